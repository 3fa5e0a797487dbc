"""The built-in numpy candidate's probabilistic family: kl_div, poisson_nll_loss, gaussian_nll_loss (not yet written)."""

__all__ = []
