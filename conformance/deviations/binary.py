"""torch 2.13's known deviations in the binary family."""

DEVIATIONS = ()
