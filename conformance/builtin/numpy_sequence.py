"""The built-in numpy candidate's sequence family: ctc_loss (not yet written)."""

__all__ = []
