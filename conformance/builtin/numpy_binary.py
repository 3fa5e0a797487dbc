"""The built-in numpy candidate's binary family: binary_cross_entropy, binary_cross_entropy_with_logits (not yet written)."""

__all__ = []
