"""The margin family: margin_ranking_loss, hinge_embedding_loss, multi_margin_loss (not yet specified)."""

SPECS = ()
