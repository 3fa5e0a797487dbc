"""The high-precision engine under every reference: two backends and certified rounding.

A loss's reference is written once, as a function of a backend ``B`` and of its arguments as
backend arrays, using only what both backends offer (+, -, *, / by exact numbers or by balls,
unary minus, ``B.exp``, ``B.log1p``, ``B.softplus``, ``B.sigmoid``, ``B.relu``, ``B.abs``,
``B.sum``, ``B.where``, ``B.reshape``). It is then evaluated:

1. fast, on numpy long double *balls* (``Ball``: a midpoint and a radius that bounds the error of
   every operation, elementary functions included, see ``LIBM_ULPS``), vectorised over the
   whole array; sums are exact (``math.fsum`` on an exact double-double split of each midpoint);
2. slowly but rigorously, with python-flint's arb ball arithmetic at increasing precision, for
   the outputs whose fast ball straddles a rounding boundary of the target format.

Every returned value is the exact result rounded once to the target format, *certified*: the
whole ball rounds to that one number. ``EvaluationError`` is raised if certification fails
even at the highest precision (it has not been seen to).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import flint
import numpy as np

from .formats import FORMATS, Format, round_dyadic, round_to_format

LD = np.longdouble
LD_UNIT_ROUNDOFF = LD(np.finfo(LD).epsneg)  # 2**-64 for x87 extended precision
# Absolute error floor for results that underflow; a normal number, so arithmetic on radii
# never meets the slow subnormal path of the x87 unit.
LD_TINY = LD(np.finfo(LD).smallest_normal)
# Assumed error bound of the C library's long double exp, expm1 and log1p, in units of
# LD_UNIT_ROUNDOFF: glibc documents at most 3 ulps on x86-64 (an ulp is at most 2 units);
# we assume 4 ulps, and tests/test_reference.py measures them against mpmath. A wrong bound
# could only matter where it also hid a rounding boundary inside a ball.
LIBM_ULPS = 8
# Up to 2**17 bits: a tail exp(-|x|) beside an exact tie is resolved for |x| up to ~9e4, which
# covers every float16 logit; beyond that evaluate() raises EvaluationError rather than guess.
ARB_PRECISIONS = (128, 256, 512, 1024, 2048, 4096, 16384, 131072)


class EvaluationError(RuntimeError):
    """The reference could not certify a result (would need more than the largest precision)."""


def _err():
    return np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore")


@dataclass
class Ball:
    """An array of long double balls: the exact value lies in [mid - rad, mid + rad]."""

    mid: np.ndarray
    rad: np.ndarray

    @staticmethod
    def exact(values) -> "Ball":
        """Balls of radius zero around values that are exactly representable (inputs)."""
        mid = np.asarray(values, dtype=LD)
        return Ball(mid, np.zeros_like(mid))

    @property
    def shape(self):
        return self.mid.shape

    def _rounded(self, mid, rad) -> "Ball":
        return Ball(mid, rad + LD_UNIT_ROUNDOFF * np.abs(mid) + LD_TINY)

    def __neg__(self):
        return Ball(-self.mid, self.rad)

    def __add__(self, other):
        other = _as_ball(other)
        with _err():
            return self._rounded(self.mid + other.mid, self.rad + other.rad)

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-_as_ball(other))

    def __rsub__(self, other):
        return _as_ball(other) + (-self)

    def __mul__(self, other):
        other = _as_ball(other)
        with _err():
            rad = (np.abs(self.mid) * other.rad + np.abs(other.mid) * self.rad
                   + self.rad * other.rad)
            return self._rounded(self.mid * other.mid, rad)

    __rmul__ = __mul__

    def __truediv__(self, divisor):
        """Division by an exact nonzero number (a count, a size), or by a ball.

        A ball divisor (a computed sum of weights) must exclude zero; where it does not, the
        quotient's radius is infinite, so the value is never certified from this pass.
        """
        if not isinstance(divisor, Ball):
            divisor = LD(divisor)
            with _err():
                return self._rounded(self.mid / divisor, self.rad / abs(divisor))
        with _err():
            low = np.abs(divisor.mid) - divisor.rad  # the smallest |divisor| in the ball
            rad = np.where(low > 0, (np.abs(self.mid) * divisor.rad
                                     + np.abs(divisor.mid) * self.rad)
                           / (np.abs(divisor.mid) * np.where(low > 0, low, 1)), LD(np.inf))
            return self._rounded(self.mid / divisor.mid, rad)

    def __getitem__(self, index):
        return Ball(self.mid[index], self.rad[index])


def _as_ball(value) -> Ball:
    return value if isinstance(value, Ball) else Ball.exact(value)


class LongDoubleBackend:
    """Vectorised long double ball arithmetic: the fast path."""

    name = "longdouble"

    @staticmethod
    def asarray(values) -> Ball:
        return Ball.exact(values)

    @staticmethod
    def exp(a: Ball) -> Ball:
        with _err():
            mid = np.exp(a.mid)
            # |exp(x + d) - exp(x)| <= exp(x) * expm1(|d|), plus the function's own error.
            rad = mid * np.expm1(a.rad) + LIBM_ULPS * LD_UNIT_ROUNDOFF * mid + LD_TINY
        return Ball(mid, rad)

    @staticmethod
    def log1p(a: Ball) -> Ball:
        with _err():
            low = a.mid - a.rad
            mid = np.log1p(a.mid)
            # log1p is 1/(1+t)-Lipschitz on [low, inf): the slope is largest at the low end.
            slope = np.where(low > -1, 1 / (1 + low), LD(np.inf))
            rad = slope * a.rad + LIBM_ULPS * LD_UNIT_ROUNDOFF * np.abs(mid) + LD_TINY
        return Ball(mid, rad)

    @staticmethod
    def abs(a: Ball) -> Ball:
        return Ball(np.abs(a.mid), a.rad)

    @staticmethod
    def relu(a: Ball) -> Ball:
        return Ball(np.maximum(a.mid, 0), a.rad)  # max(., 0) is 1-Lipschitz

    @classmethod
    def softplus(cls, a: Ball) -> Ball:
        """log(1 + exp(a)) = max(a, 0) + log1p(exp(-|a|)), stable for every finite a."""
        return cls.relu(a) + cls.log1p(cls.exp(-cls.abs(a)))

    @classmethod
    def sigmoid(cls, a: Ball) -> Ball:
        """1 / (1 + exp(-a)) = exp(-softplus(-a)), stable for every finite a."""
        return cls.exp(-cls.softplus(-a))

    @staticmethod
    def reshape(a: Ball, shape) -> Ball:
        return Ball(a.mid.reshape(shape), a.rad.reshape(shape))

    @staticmethod
    def where(condition, a, b) -> Ball:
        a, b = _as_ball(a), _as_ball(b)
        return Ball(np.where(condition, a.mid, b.mid), np.where(condition, a.rad, b.rad))

    @staticmethod
    def sum(a: Ball, axis=None) -> Ball:
        """Exact sum of the midpoints (fsum on a double-double split), radii added up."""
        mid = np.moveaxis(a.mid, axis, -1) if axis is not None else a.mid.reshape(-1)
        rad = np.moveaxis(a.rad, axis, -1) if axis is not None else a.rad.reshape(-1)
        count = mid.shape[-1]
        rows = mid.reshape(int(np.prod(mid.shape[:-1])), count)
        high = rows.astype(np.float64)
        low = (rows - high).astype(np.float64)  # exact for long double's 64-bit significand
        out_mid = np.empty(rows.shape[0], dtype=LD)
        out_err = np.empty(rows.shape[0], dtype=LD)
        for i in range(rows.shape[0]):
            parts = high[i].tolist() + low[i].tolist()
            if not all(map(math.isfinite, parts)):
                out_mid[i], out_err[i] = np.sum(rows[i]), LD(np.inf)
                continue
            first = math.fsum(parts)
            second = math.fsum(parts + [-first]) if math.isfinite(first) else 0.0
            out_mid[i] = LD(first) + LD(second)
            out_err[i] = LD(math.ulp(second)) if second else LD(0)
        # Midpoints below float64's subnormal range lose bits in the split: bound what is lost.
        with _err():  # infinite rows already carry an infinite error
            lost = np.where(np.isfinite(rows), np.abs(rows - high - low), 0)
        out_err += np.sum(lost, axis=-1)
        with _err():
            rad_sum = np.sum(rad, axis=-1).reshape(-1) * (1 + LD(2) * count * LD_UNIT_ROUNDOFF)
            total_rad = rad_sum + out_err + LD_UNIT_ROUNDOFF * np.abs(out_mid)
        shape = mid.shape[:-1]
        return Ball(out_mid.reshape(shape), total_rad.reshape(shape))


class ArbBackend:
    """python-flint arb balls in numpy object arrays, at a given precision: the slow path."""

    name = "arb"

    def __init__(self, precision: int):
        self.precision = precision

    @staticmethod
    def asarray(values):
        values = np.asarray(values)
        out = np.empty(values.shape, dtype=object)
        flat = out.reshape(-1)
        for i, v in enumerate(values.reshape(-1).tolist()):
            flat[i] = flint.arb(v)
        return out

    _exp = staticmethod(np.frompyfunc(lambda v: v.exp(), 1, 1))
    _log1p = staticmethod(np.frompyfunc(lambda v: v.log1p(), 1, 1))
    _abs = staticmethod(np.frompyfunc(lambda v: abs(v), 1, 1))
    _relu = staticmethod(np.frompyfunc(lambda v: v.max(flint.arb(0)), 1, 1))

    def exp(self, a):
        return self._exp(a)

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
    def sum(a, axis=None):
        a = np.asarray(a, dtype=object)
        if a.size == 0:
            shape = () if axis is None else np.delete(np.array(a.shape), axis).tolist()
            out = np.empty(shape, dtype=object)
            out.reshape(-1)[:] = [flint.arb(0)] * out.size
            return out
        result = np.add.reduce(a, axis=axis)
        return result


@dataclass
class Evaluated:
    """A certified reference result: rounded to the target format, and the best estimate."""

    rounded: np.ndarray  # float64 holding numbers of the target format
    exact: np.ndarray  # long double estimate of the exact value (for error reporting)


def _certify_balls(ball: Ball, fmt: Format):
    """Round a long double ball to fmt; ok where both ends round to the same number."""
    with _err():
        rad = ball.rad * LD(1.0001) + LD_TINY
        low, low_tie = round_to_format(ball.mid - rad, fmt)
        high, high_tie = round_to_format(ball.mid + rad, fmt)
        mid_rounded, _ = round_to_format(ball.mid, fmt)
    exact_special = (ball.rad == 0) & ~np.isfinite(ball.mid)
    ok = ((low == high) & ~low_tie & ~high_tie & np.isfinite(rad)) | exact_special
    ok &= ~np.isnan(ball.mid) | exact_special
    return np.where(exact_special, ball.mid.astype(np.float64), mid_rounded), np.asarray(ok)


def _man_exp(value) -> tuple[int, int]:
    mantissa, exponent = value.man_exp()
    return int(mantissa), int(exponent)


def _certify_arb(value, fmt: Format):
    """Round one arb ball to fmt: (rounded, exact estimate, ok)."""
    if not value.is_finite():
        return math.nan, LD(math.nan), False
    estimate, _ = round_dyadic(*_man_exp(value.mid()), FORMATS["float64"])
    if value.rad() == 0:  # an exact value: even a tie has one right rounding (to even)
        rounded, _ = round_dyadic(*_man_exp(value.mid()), fmt)
        return rounded, LD(estimate), True
    low, low_tie = round_dyadic(*_man_exp(value.lower()), fmt)
    high, high_tie = round_dyadic(*_man_exp(value.upper()), fmt)
    return low, LD(estimate), (low == high and not low_tie and not high_tie)


def _arb_pass(function, args, fmt, precision):
    backend = ArbBackend(precision)
    with flint.ctx.workprec(precision):  # lower() and upper() round at the context precision
        out = np.asarray(function(backend, *[backend.asarray(a) for a in args]), dtype=object)
        rounded = np.empty(out.shape)
        exact = np.empty(out.shape, dtype=LD)
        ok = np.empty(out.shape, dtype=bool)
        for index, value in np.ndenumerate(out):
            value = value if isinstance(value, flint.arb) else flint.arb(value)
            rounded[index], exact[index], ok[index] = _certify_arb(value, fmt)
    return rounded, exact, ok


def evaluate(function, args, fmt: Format, independent: str = "none") -> Evaluated:
    """Evaluate ``function(B, *args)`` exactly and round it once to ``fmt``.

    ``args`` are numpy arrays of exactly representable numbers (the inputs the candidate saw).
    When the fast pass leaves outputs uncertified they are recomputed in arb; ``independent``
    says how little must be recomputed:

    - ``"elements"``: the function acts element by element on its broadcast arguments;
    - ``"rows"``: output row i depends only on row i (the leading axis) of every argument;
    - ``"none"``: the whole function is recomputed.
    """
    ball = function(LongDoubleBackend, *[Ball.exact(a) for a in args])
    rounded, ok = _certify_balls(ball, fmt)
    exact = np.array(ball.mid, dtype=LD)  # an array even for a 0-d result
    if independent == "elements":
        args = [a.reshape(-1) for a in np.broadcast_arrays(*[np.asarray(a) for a in args])]
    for precision in ARB_PRECISIONS:
        if ok.all():
            return Evaluated(rounded, exact)
        todo = ~ok
        if independent == "none":
            sub_rounded, sub_exact, sub_ok = (
                part[todo] for part in _arb_pass(function, args, fmt, precision))
        else:
            rows = todo.reshape(-1) if independent == "elements" else todo
            sub_rounded, sub_exact, sub_ok = _arb_pass(
                function, [np.asarray(a)[rows] for a in args], fmt, precision)
        rounded[todo], exact[todo] = sub_rounded.reshape(-1), sub_exact.reshape(-1)
        ok[todo] = sub_ok.reshape(-1)
    if ok.all():
        return Evaluated(rounded, exact)
    raise EvaluationError(
        f"could not certify the rounding of {int((~ok).sum())} value(s) to {fmt.name} "
        f"even at {ARB_PRECISIONS[-1]} bits")
