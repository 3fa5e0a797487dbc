"""The built-in numpy candidate's margin family: margin_ranking_loss, hinge_embedding_loss, multi_margin_loss (not yet written)."""

__all__ = []
