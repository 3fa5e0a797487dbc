"""torch 2.13's known deviations in the probabilistic family."""

DEVIATIONS = ()
