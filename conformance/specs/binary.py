"""The binary family: binary_cross_entropy, binary_cross_entropy_with_logits (not yet specified)."""

SPECS = ()
