"""The probabilistic family: kl_div, poisson_nll_loss, gaussian_nll_loss (not yet specified)."""

SPECS = ()
