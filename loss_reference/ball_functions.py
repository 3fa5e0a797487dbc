"""Functions of balls (or arb values) that the engine's backends do not have, shared by the
loss modules: each takes a ``balls.Ball`` array, or an object array of python-flint arb values
from the arb tier, and returns the same kind.

- ``flags``: an exact 0/1 indicator argument back as booleans (a decision, not arithmetic);
- ``log``, ``sqrt``, ``power``, ``reciprocal``: elementary functions on the domain where
  they are regular (the caller routes the rest to exact special values);
- ``row_max``: the maximum over the last axis.

Each ball result bounds its own rounding (``LIBM_ULPS`` units of the precision for the libm's
functions) and what the argument's radius propagates, through the function's Lipschitz
constant on the ball.
"""

from __future__ import annotations

import flint
import numpy as np

from .balls import LIBM_ULPS, Ball, quiet


def flags(mask) -> np.ndarray:
    """An exact 0/1 indicator argument (balls or arb objects) as booleans."""
    values = mask.mid if isinstance(mask, Ball) else mask
    return np.asarray(values != 0, dtype=bool)


def log(B, a):
    """Natural log of a ball (or arb) array whose values are all positive."""
    if not isinstance(a, Ball):
        return np.frompyfunc(lambda v: v.log(), 1, 1)(a)
    with quiet():
        low = a.mid - a.rad
        mid = np.log(a.mid)
        # log is 1/t-Lipschitz on [low, inf): the slope is largest at the low end.
        slope = np.where(low > 0, 1 / np.where(low > 0, low, 1), np.inf)
        return a.after(mid, slope * a.rad, ulps=LIBM_ULPS)


def reciprocal(B, a):
    """1 / a for a ball (or arb) array that excludes 0."""
    if not isinstance(a, Ball):
        return 1 / a
    return a.like(np.ones(a.shape)) / a


def sqrt(B, a):
    """sqrt of a ball of non-negative numbers."""
    if not isinstance(a, Ball):
        return np.frompyfunc(lambda v: v.sqrt(), 1, 1)(a)
    with quiet():
        mid = np.sqrt(np.maximum(a.mid, 0))
        low = a.mid - a.rad
        # |sqrt(x) - sqrt(m)| = |x - m| / (sqrt(x) + sqrt(m)) <= sqrt(|x - m|) everywhere.
        spread = np.where(low > 0, a.rad / (np.sqrt(np.where(low > 0, low, 1)) + mid),
                          np.sqrt(a.rad))
        return a.after(mid, spread * (1 + 4 * a.precision.unit_roundoff))


def power(B, a, p: float, root: bool = False):
    """a ** p (a ** (1 / p) with ``root``, 1 / p exact) for a ball of non-negative numbers
    and a real p > 0 (monotone)."""
    if p == 1:
        return a
    if not isinstance(a, Ball):
        exponent = flint.arb(1) / flint.arb(p) if root else flint.arb(p)
        return np.frompyfunc(lambda v: v ** exponent if v != 0 else flint.arb(0), 1, 1)(a)
    precision = a.precision
    u, tiny, dtype = precision.unit_roundoff, precision.tiny, precision.dtype
    with quiet():
        e = dtype(1) / dtype(p) if root else dtype(p)
        m = np.maximum(a.mid, 0)
        high, low = m + a.rad, np.maximum(a.mid - a.rad, 0)
        mid, top, bottom = m ** e, high ** e, low ** e
        rad = (top - bottom + 4 * LIBM_ULPS * u * top) * (1 + 4 * u) + tiny
        if root:  # x^e for the rounded e: |x^(1/p) - x^e| <= x^e |log x| |1/p - e| (1 + ...)
            logs = np.maximum(np.abs(np.log(np.where(high > 0, high, 1))),
                              np.abs(np.log(np.where(low > 0, low, tiny))))
            rad = rad + 2 * u * e * logs * top
        return Ball(mid, rad)


def row_max(B, a):
    """max over the last axis (1-Lipschitz in the sup norm)."""
    if not isinstance(a, Ball):
        return np.frompyfunc(lambda u, v: u.max(v), 2, 1).reduce(a, axis=-1)
    if a.mid.shape[-1] == 0:
        return Ball(np.zeros(a.mid.shape[:-1], a.mid.dtype),
                    np.zeros(a.mid.shape[:-1], a.mid.dtype))
    return Ball(np.max(a.mid, axis=-1), np.max(a.rad, axis=-1))
