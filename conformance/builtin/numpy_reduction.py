"""The reduction argument of the numpy candidate's losses, shared by every family module, and
the mean's division of a gradient without an overflow on the way (``product_over``)."""

from __future__ import annotations

import numpy as np

REDUCTIONS = ("none", "mean", "sum")


def resolve_reduction(size_average, reduce, reduction, allowed=REDUCTIONS) -> str:
    """The effective reduction: torch's legacy ``size_average``/``reduce`` override
    ``reduction`` when either is given; an unknown reduction raises ValueError."""
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        if not reduce:
            return "none"
        return "mean" if size_average else "sum"
    if reduction not in allowed:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of "
                         + ", ".join(repr(r) for r in allowed))
    return reduction


def product_over(factors, divisor=1.0) -> np.ndarray:
    """prod(factors) / divisor, elementwise (broadcast), in float64 without an overflow or
    underflow on the way: the significands (``np.frexp``) multiply and divide, the exponents
    add, and ``np.ldexp`` scales once at the end. So the result leaves the range only where
    its exact value does, a rounding per factor from it: g / sum(w) of a subnormal sum of
    weights is no longer inf before a product with a small weight. Infinite, NaN and zero
    factors give the IEEE product's result."""
    significand, exponent = np.float64(1.0), 0
    with np.errstate(all="ignore"):  # inf, nan and 0 / 0 are the IEEE results
        for factor in factors:
            part, power = np.frexp(np.asarray(factor, np.float64))
            significand, exponent = significand * part, exponent + power
        part, power = np.frexp(np.asarray(divisor, np.float64))
        return np.ldexp(significand / part, exponent - power)
