"""The classification family: cross_entropy, nll_loss (not yet specified)."""

SPECS = ()
