"""torch 2.13's known deviations in the embedding family."""

DEVIATIONS = ()
