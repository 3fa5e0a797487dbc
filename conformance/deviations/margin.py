"""torch 2.13's known deviations in the margin family."""

DEVIATIONS = ()
