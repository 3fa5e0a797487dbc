"""The slow exact tier: python-flint's arb balls, element by element, at a chosen precision.

``ArbBackend`` offers what a loss's reference is written in (the same operations as
``balls.BallBackend``) on numpy object arrays of ``flint.arb``; ``certify_arb`` rounds one arb
ball to a format, exactly, and says whether the whole ball rounds to that one number.
"""

from __future__ import annotations

import math

import flint
import numpy as np

from .balls import LD
from .formats import ESTIMATE_ULPS, Format, round_dyadic, round_float64


class ArbBackend:
    """python-flint arb balls in numpy object arrays, at a given precision: the slow path."""

    def __init__(self, precision: int):
        self.precision = precision
        self.name = f"arb {precision} bits"

    @staticmethod
    def asarray(values):
        values = np.asarray(values)
        out = np.empty(values.shape, dtype=object)
        flat = out.reshape(-1)
        for i, v in enumerate(values.reshape(-1).tolist()):
            flat[i] = flint.arb(v)
        return out

    _log1p = staticmethod(np.frompyfunc(lambda v: v.log1p(), 1, 1))
    _abs = staticmethod(np.frompyfunc(lambda v: abs(v), 1, 1))
    _relu = staticmethod(np.frompyfunc(lambda v: v.max(flint.arb(0)), 1, 1))

    def exp(self, a):
        with np.errstate(over="ignore"):  # ``_exp_one``'s float of a bound beyond the range
            return np.frompyfunc(self._exp_one, 1, 1)(a)

    def _exp_one(self, value):
        """exp(value), at fewer bits where it is small: exp(x) for x < 0 is computed with
        precision + x / ln 2 bits (at least 64), so its absolute error is what ``precision``
        bits give a number near 1. A sum of exponentials (a softmax over a large vocabulary,
        most terms far below the largest) then costs the full precision only where it
        matters: at 131072 bits, that is tens of seconds saved per thousand terms."""
        upper = value.upper()
        if not upper < 0 or not upper.is_finite():
            return value.exp()
        binades = float(upper) / math.log(2)  # -inf below float's range: then 64 bits
        bits = self.precision + int(binades) + 1 if math.isfinite(binades) else 64
        if bits >= self.precision:
            return value.exp()
        with flint.ctx.workprec(max(bits, 64)):
            return value.exp()

    def log1p(self, a):
        return self._log1p(a)

    def abs(self, a):
        return self._abs(a)

    def relu(self, a):
        return self._relu(a)

    def softplus(self, a):
        return self.relu(a) + self.log1p(self.exp(-self.abs(a)))

    def sigmoid(self, a):
        # 1 / (1 + exp(-a)) is exact at a = 0 (exp(0) = 1 in arb), where sigmoid = 1/2 exactly
        # and a gradient such as g w sigmoid(0) / C can be an exact tie of the target format.
        return 1 / (1 + self.exp(-a))

    @staticmethod
    def where(condition, a, b):
        return np.where(condition, a, b)

    @staticmethod
    def reshape(a, shape):
        return np.asarray(a, dtype=object).reshape(shape)

    @staticmethod
    def matmul(a, b):
        return np.matmul(np.asarray(a, dtype=object), np.asarray(b, dtype=object))

    def affine_minus_max(self, a, b, c, width: int):
        """(z - max, k) as ``BallBackend.affine_minus_max``: z = a @ b + c as rows of
        ``width``, each minus its entry at its largest column k."""
        z = (self.matmul(a, b) + np.asarray(c, dtype=object)).reshape(-1, width)
        rows, k = np.arange(z.shape[0]), self.argmax(z, axis=-1)
        shifted = z - z[rows, k][:, None]
        for _ in range(2):  # float midpoints of 1e60 + 1/4096 and 1e60 tie: look again
            better = self.argmax(shifted, axis=-1)
            if not any(shifted[i, j] > 0 for i, j in zip(rows, better)):
                break
            k = better
            shifted = z - z[rows, k][:, None]
        return shifted, k

    @staticmethod
    def transpose(a):
        return np.asarray(a, dtype=object).T

    @staticmethod
    def argmax(a, axis=-1):
        """Where the midpoints are largest (a decision: any choice keeps the math exact)."""
        values = np.frompyfunc(lambda v: float(v.mid()), 1, 1)(np.asarray(a, dtype=object))
        return np.argmax(values.astype(np.float64), axis=axis)

    @staticmethod
    def sum(a, axis=None):
        a = np.asarray(a, dtype=object)
        if a.size == 0:
            shape = () if axis is None else np.delete(np.array(a.shape), axis).tolist()
            out = np.empty(shape, dtype=object)
            out.reshape(-1)[:] = [flint.arb(0)] * out.size
            return out
        return np.add.reduce(a, axis=axis)


def _man_exp(value) -> tuple[int, int]:
    mantissa, exponent = value.man_exp()
    return int(mantissa), int(exponent)


def _long_double(mantissa: int, exponent: int):
    """The long double nearest-ish (truncated to 64 bits) to mantissa * 2**exponent."""
    if mantissa == 0:
        return LD(0)
    extra = max(abs(mantissa).bit_length() - 64, 0)
    mantissa, exponent = (abs(mantissa) >> extra) * (1 if mantissa > 0 else -1), exponent + extra
    high, low = abs(mantissa) >> 32 << 32, abs(mantissa) & 0xFFFFFFFF  # each exact in float64
    with np.errstate(over="ignore", under="ignore"):
        value = np.ldexp(LD(float(high)) + LD(float(low)), max(min(exponent, 1 << 20), -(1 << 20)))
    return value if mantissa > 0 else -value


def certify_arb(value, fmt: Format):
    """Round one arb ball to fmt: (rounded, long double estimate of the exact value, ok)."""
    if not isinstance(value, flint.arb):
        value = flint.arb(value)
    if not value.is_finite():
        return math.nan, LD(math.nan), False
    estimate = _long_double(*_man_exp(value.mid()))
    if value.rad() == 0:  # an exact value: even a tie has one right rounding (to even)
        rounded, _ = round_dyadic(*_man_exp(value.mid()), fmt)
        return rounded, estimate, True
    low, low_tie = round_dyadic(*_man_exp(value.lower()), fmt)
    high, high_tie = round_dyadic(*_man_exp(value.upper()), fmt)
    return low, estimate, (low == high and not low_tie and not high_tie
                           and _estimate_close(value, low, fmt))


def _estimate_close(value, rounded: float, fmt: Format) -> bool:
    """Whether the ball's midpoint (the estimate) is within ESTIMATE_ULPS of the narrower gap
    beside ``rounded`` from every point of it, as the ball tiers promise (at 128 bits a sum
    of distances near 2e38 has a radius of 0.9, which one bfloat16 number can hold whole);
    an overflow, rounded to an infinity, promises nothing more."""
    if not math.isfinite(rounded):
        return True
    _, narrower = fmt.gaps(np.array(rounded))
    return bool(value.rad() <= _in_ulps(float(narrower)))


def _in_ulps(gap: float):
    """ESTIMATE_ULPS of ``gap``, in arb: exact (in float64, a 64th of float64's smallest gap
    would underflow to 0)."""
    return flint.arb(gap) * flint.arb(ESTIMATE_ULPS)


def arb_evaluate(function, args, fmt: Format, precision: int):
    """``function(ArbBackend(precision), *args)`` rounded to fmt: (rounded, estimate, ok)
    arrays of the output's shape."""
    backend = ArbBackend(precision)
    with flint.ctx.workprec(precision):  # lower() and upper() round at the context precision
        out = np.asarray(function(backend, *[backend.asarray(a) for a in args]), dtype=object)
        return certify_arb_array(out, fmt)


FLOAT64_TINY_ENOUGH = 2.0 ** -900


def certify_arb_array(values: np.ndarray, fmt: Format):
    """``certify_arb`` over an object array of arb balls: (rounded, estimate, ok) arrays.

    A vectorised test settles most elements: the midpoint's float64 rounding, rounded to fmt,
    is a candidate r, and a ball that lies strictly inside r's rounding interval (tested in
    exact arb arithmetic) rounds to r whole, with no tie. ``certify_arb`` judges the rest one
    by one (zeros, whose sign the float64 rounding does not keep, tiny values, ties,
    non-finite values, overflow), so the answers are certify_arb's own; the per-element test
    cost 100 us a value. Call it inside the ``flint.ctx.workprec`` the values were computed
    at."""
    flat = np.empty(values.size, dtype=object)  # a function may return plain numbers too
    flat[:] = [v if isinstance(v, flint.arb) else flint.arb(v) for v in values.reshape(-1)]
    rounded, exact = np.zeros(flat.shape), np.zeros(flat.shape, dtype=LD)
    ok = np.zeros(flat.shape, dtype=bool)
    finite = np.array([v.is_finite() for v in flat], dtype=bool)
    mids = [v.mid() for v in flat[finite]]
    high = np.array([float(m) for m in mids])
    low = np.array([float(m - h) for m, h in zip(mids, high.tolist())])  # exact: m - h is short
    with np.errstate(all="ignore"):
        candidate = round_float64(high, fmt)
        spacing, narrower = fmt.gaps(candidate)
    # Far enough above float64's subnormals for the low part to keep its bits: the estimate
    # high + low is then the midpoint to within long double's precision.
    usable = np.isfinite(candidate) & (candidate != 0) & (np.abs(high) > FLOAT64_TINY_ENOUGH)
    up = np.where(candidate < 0, narrower, spacing)  # the gap on each side, away or towards 0
    down = np.where(candidate < 0, spacing, narrower)
    positions = np.flatnonzero(finite)
    inside = np.zeros(len(mids), dtype=bool)
    for i in np.flatnonzero(usable):
        r, value = flint.arb(candidate[i]), flat[positions[i]]
        inside[i] = bool(value > r - flint.arb(down[i]) / 2) and bool(
            value < r + flint.arb(up[i]) / 2) and bool(
            value.rad() <= _in_ulps(min(up[i], down[i])))
    settled = positions[inside]
    rounded[settled] = candidate[inside]
    exact[settled] = high[inside].astype(LD) + low[inside].astype(LD)
    ok[settled] = True
    for index in np.flatnonzero(~ok):
        rounded[index], exact[index], ok[index] = certify_arb(flat[index], fmt)
    return rounded.reshape(values.shape), exact.reshape(values.shape), ok.reshape(values.shape)
