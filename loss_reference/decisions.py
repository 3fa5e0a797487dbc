"""Exact decisions the references branch on: the sign of a sum of floating-point numbers.

Which side of a kink an input lies on (a hinge, huber's threshold, a residual's sign) must be
decided exactly, for every element, before the engine evaluates the chosen branch. The float64
sum decides almost every element at numpy speed; the few it cannot (the sum within its rounding
error of 0) are decided by ``math.fsum``, which is correctly rounded (so its sign is the sign of
the exact sum), or by exact rationals where fsum's intermediate sums overflow.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

_U = 2.0 ** -53


def _exact_sign(values) -> int:
    try:
        total = math.fsum(values)
    except OverflowError:  # an intermediate sum beyond float64's range
        total = sum((Fraction(v) for v in values), Fraction(0))
    return (total > 0) - (total < 0)


def sign_of_sum(*terms) -> np.ndarray:
    """The exact sign (-1.0, 0.0 or 1.0) of the sum of the float64 arrays ``terms`` (broadcast
    together), elementwise; where a term is infinite, that of the infinite terms' sum (nan
    where a term is nan or infinities of both signs meet)."""
    arrays = [np.asarray(t, np.float64) for t in terms]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    # each term's own |t| and finiteness, before broadcasting (x_label and x of (N, K, C)
    # pairs are (N, K, 1) and (N, 1, C)): a third of the passes over the broadcast shape
    magnitudes = [np.abs(a) for a in arrays]
    all_finite = all(np.isfinite(m).all() for m in magnitudes)
    with np.errstate(over="ignore", invalid="ignore"):
        total = arrays[0] + arrays[1] if len(arrays) > 1 else arrays[0] + np.zeros(shape)
        bound = magnitudes[0] + magnitudes[1] if len(arrays) > 1 else magnitudes[0] + 0.0
        for term, magnitude in zip(arrays[2:], magnitudes[2:]):
            total = total + term  # not in place: the sum may broadcast to a larger shape
            bound = bound + magnitude
        total, bound = np.broadcast_to(total, shape), np.broadcast_to(bound, shape)
        # n - 1 additions, each off by at most u of its result (<= u * the sum of |terms|): a
        # sum larger than that bound (with room for the bound's own rounding) has its sign.
        undecided = ~(np.abs(total) > bound * (1.01 * (len(arrays) - 1) * _U))
        if not all_finite:
            # Where a term is not finite, the infinite terms decide: the sign of their sum
            # (nan for a nan term or for +inf - inf: no sign).
            special = np.zeros(shape, bool)
            infinite = np.zeros(shape)
            for term in arrays:
                special |= ~np.isfinite(term)
                infinite += np.where(np.isfinite(term), 0.0, term)
            undecided &= ~special
            total = np.where(special, infinite, total)
    out = np.sign(total).reshape(-1)
    where = np.flatnonzero(undecided)
    if where.size:
        index = np.unravel_index(where, shape) if shape else ()
        columns = [np.atleast_1d(np.broadcast_to(a, shape)[index]) for a in arrays]
        out[where] = [_exact_sign([float(c[i]) for c in columns]) for i in range(where.size)]
    return out.reshape(shape)


def float_sum(values) -> float:
    """The correctly rounded float64 sum of float64 values, never raising: ``math.fsum``, and
    where it raises, the exact rational sum rounded (+-inf beyond float64's range) for an
    intermediate overflow; with nans or infinities, IEEE's sum of those. A weight sum (a
    'mean' divisor) passes through here: weights of 1e308 or of both infinities are valid."""
    array = np.asarray(values, np.float64).reshape(-1)
    finite = np.isfinite(array)
    if not finite.all():  # IEEE's sum of them: nan, or an infinity of their one sign
        return sum(array[~finite].tolist())
    values = array.tolist()  # Python floats: fsum's fastest input
    try:
        return math.fsum(values)
    except OverflowError:  # the partial sums overflowed
        exact = sum((Fraction(v) for v in values), Fraction(0))
        try:
            return float(exact)  # int / int: correctly rounded
        except OverflowError:
            return math.inf if exact > 0 else -math.inf


def quotient_by_zero(numerator: float) -> float:
    """numerator / 0 as IEEE arithmetic gives it (a mean whose weights sum to exactly 0): NaN
    for a numerator of 0 or NaN (a zero weight times an infinity), else the infinity of the
    numerator's sign."""
    if numerator == 0 or math.isnan(numerator):
        return math.nan
    return math.copysign(math.inf, numerator)
