"""The embedding family: cosine_embedding_loss, triplet_margin_loss, triplet_margin_with_distance_loss (not yet specified)."""

SPECS = ()
