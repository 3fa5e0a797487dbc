"""The built-in numpy candidate's embedding family: cosine_embedding_loss, triplet_margin_loss, triplet_margin_with_distance_loss (not yet written)."""

__all__ = []
