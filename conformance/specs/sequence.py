"""The sequence family: ctc_loss (not yet specified)."""

SPECS = ()
