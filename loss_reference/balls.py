"""Ball arithmetic on numpy arrays: midpoints and radii that bound every rounding error.

A ``Ball`` is an array of midpoints and an array of radii; the exact value of each element lies
in [mid - rad, mid + rad]. Every operation computes the midpoint in floating point and adds to
the radius what the inputs' radii propagate plus a bound on its own rounding (one unit
roundoff u of the result, ``LIBM_ULPS`` units for an elementary function, and an absolute
``tiny`` for results that underflow). Radii are themselves computed in floating point; their
relative error is far below the 1e-4 by which ``engine.certify`` widens them.

Two precisions (``Precision``), the same code for both:

- float64: numpy's SIMD exp and arithmetic, ~1e9 elements/s per core; u = 2^-53, so it
  certifies results rounded to float32, float16 and bfloat16, never float64 ones;
- long double (x87 extended, 64-bit significand): u = 2^-64, ~6-30 times slower; it certifies
  float64 results and what float64 could not.

Sums are pairwise (``pairwise_sum``): each term passes through at most ceil(log2 n) roundings,
so a sum of n terms errs by at most ceil(log2 n) u sum |terms| (to first order), which a
vectorised numpy reduction delivers without a Python loop. ``BallBackend(precision,
exact_sums=True)`` instead adds the midpoints exactly (``math.fsum``, row by row): slower, but it
certifies sums that cancel; the engine uses it as a third tier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .exact_ops import (all_finite, exact_error, is_short, is_unit, two_product_error,
                        two_sum_error)
from .split_product import norms, split_product

LD = np.longdouble
# Assumed error bound of exp, expm1 and log1p (numpy's float64 SIMD code, the C library's long
# double functions), in units of the precision's unit roundoff: glibc documents at most 3 ulps
# for the long double functions on x86-64 and numpy under 4 for its float64 ones (an ulp is at
# most 2 units); tests/test_reference.py measures both against mpmath.
LIBM_ULPS = 8


@dataclass(frozen=True)
class Precision:
    """A floating-point type balls are computed in, and the error constants that go with it."""

    name: str
    dtype: type
    unit_roundoff: float  # the largest relative error of one rounded operation
    tiny: float  # an absolute error floor for results that underflow (a normal number)


FLOAT64 = Precision("float64", np.float64, 2.0 ** -53, float(np.finfo(np.float64).smallest_normal))
LONG_DOUBLE = Precision("longdouble", LD, LD(np.finfo(LD).epsneg), LD(np.finfo(LD).smallest_normal))
_BY_DTYPE = {np.dtype(p.dtype): p for p in (FLOAT64, LONG_DOUBLE)}


def precision_of(values: np.ndarray) -> Precision:
    """The Precision an array of midpoints is computed in."""
    return _BY_DTYPE[np.asarray(values).dtype]


def quiet():
    """numpy's floating-point warnings off: overflow, underflow and nan are part of the math."""
    return np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore")


@dataclass
class Ball:
    """An array of balls: the exact value lies in [mid - rad, mid + rad]."""

    mid: np.ndarray
    rad: np.ndarray

    @staticmethod
    def exact(values, precision: Precision = LONG_DOUBLE) -> "Ball":
        """Balls of radius zero around exactly representable values (inputs)."""
        mid = np.asarray(values, dtype=precision.dtype)
        # a read-only view of one zero: no memory, and no pass over it to fill it
        return Ball(mid, np.broadcast_to(np.zeros((), mid.dtype), mid.shape))

    @property
    def precision(self) -> Precision:
        return precision_of(self.mid)

    @property
    def shape(self):
        return self.mid.shape

    def after(self, mid, propagated, ulps: float = 1) -> "Ball":
        """The ball of a result ``mid`` computed with at most ``ulps`` units of rounding error,
        whose inputs' radii propagate to ``propagated``."""
        p = self.precision
        with quiet():
            return Ball(mid, propagated + ulps * p.unit_roundoff * np.abs(mid) + p.tiny)

    def like(self, value) -> "Ball":
        """``value`` (a Ball, or exact numbers) as a Ball of this one's precision."""
        if isinstance(value, Ball):
            return value
        return Ball.exact(value, self.precision)

    def __neg__(self):
        return Ball(-self.mid, self.rad)

    def __add__(self, other):
        other = self.like(other)
        with quiet():
            total = self.after(self.mid + other.mid, self.rad + other.rad)
            exact_self, exact_other = is_exact(self), is_exact(other)
            if exact_self and exact_other:
                total.rad = exact_error(total.rad, two_sum_error(self.mid, other.mid, total.mid))
            elif exact_self or exact_other:
                # an exact addend (a constant, an input) and a ball exact in places: there the
                # sum's own rounding error, exactly (0 for an exact sum, so a tie survives)
                zero = (other if exact_self else self).rad == 0
                if zero.any():
                    error = two_sum_error(self.mid, other.mid, total.mid)
                    total.rad = np.where(zero, exact_error(total.rad, error), total.rad)
            return total

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-self.like(other))

    def __rsub__(self, other):
        return self.like(other) + (-self)

    def __mul__(self, other):
        other = self.like(other)
        with quiet():
            mid = self.mid * other.mid
            if is_exact(self) and is_exact(other):
                if _product_is_exact(self, other):
                    return Ball.exact(mid, self.precision)
                product = self.after(mid, 0)
                error = two_product_error(self.mid, other.mid, mid, self.precision.dtype,
                                          self.precision.tiny)
                product.rad = exact_error(product.rad, error)
                return product
            for factor, ball in ((other, self), (self, other)):
                if is_exact(factor) and _scales_exactly(factor, ball):
                    return Ball(mid, np.abs(factor.mid) * ball.rad)
            rad = (np.abs(self.mid) * other.rad + np.abs(other.mid) * self.rad
                   + self.rad * other.rad)
            return self.after(mid, rad)

    __rmul__ = __mul__

    def __truediv__(self, divisor):
        """Division by an exact nonzero number (a count, a size), or by a ball.

        A ball divisor (a computed sum of weights) must exclude zero; where it does not, the
        quotient's radius is infinite, so the value is never certified from this pass.
        """
        dtype = self.precision.dtype
        if not isinstance(divisor, Ball):
            divisor = dtype(divisor)
            with quiet():
                quotient = self.after(self.mid / divisor, self.rad / abs(divisor))
                if is_exact(self):  # exact where quotient * divisor is the dividend
                    back = quotient.mid * divisor
                    error = two_product_error(quotient.mid, divisor, back, self.precision.dtype,
                                              self.precision.tiny)
                    exact = (back == self.mid) & (error == 0)
                    quotient.rad = np.where(exact, 0, quotient.rad).astype(dtype)
                return quotient
        with quiet():
            low = np.abs(divisor.mid) - divisor.rad  # the smallest |divisor| in the ball
            rad = np.where(low > 0, (np.abs(self.mid) * divisor.rad
                                     + np.abs(divisor.mid) * self.rad)
                           / (np.abs(divisor.mid) * np.where(low > 0, low, 1)), dtype(np.inf))
            return self.after(self.mid / divisor.mid, rad)

    def __getitem__(self, index):
        return Ball(self.mid[index], self.rad[index])


# --- exact operations on exact operands ---------------------------------------------------------
# The sum or product of two exact numbers is often itself exact (the difference of two float32
# inputs, in float64), and an exact result can be a tie of the target format, which no ball of
# positive radius certifies. Where both operands are exact, the rounding error itself is
# computed exactly (``exact_ops``) and becomes the radius: zero where the result is exact, so
# ``engine.certify`` rounds it as it is (ties to even).

def is_exact(ball: "Ball") -> bool:
    """Whether every radius is 0 (one look at Ball.exact's view of a single zero)."""
    rad = ball.rad
    if rad.size and not any(rad.strides):
        return not rad.reshape(-1)[0]
    return not np.any(rad)


def _product_is_exact(a: "Ball", b: "Ball") -> bool:
    """Whether the product of two exact balls is exact in their precision, by a cheap test of
    each (remembered on the Ball: an input is often in several products): both short (two
    float32 inputs), or one of them 0 and +-1 only (a mask) and the other finite."""
    if _remembered(a, "short", is_short) and _remembered(b, "short", is_short):
        return True
    return ((_remembered(a, "unit", is_unit) and _remembered(b, "finite", all_finite))
            or (_remembered(b, "unit", is_unit) and _remembered(a, "finite", all_finite)))


def _scales_exactly(factor: "Ball", ball: "Ball") -> bool:
    """Whether every product of the exact ``factor`` (0 and +-1 only: a mask, or a weight of
    ones) with ``ball``'s finite midpoints is exact, so that the product's radius is the
    ball's, scaled, without a rounding: an exact value times 1 stays exact, a tie included.
    The first element decides most factors at once."""
    first = factor.mid.reshape(-1)[:1]
    if first.size and abs(first[0]) not in (0, 1):
        return False
    return _remembered(factor, "unit", is_unit) and bool(all_finite(ball.mid))


def _remembered(ball: "Ball", name: str, test) -> bool:
    key = f"_{name}_known"
    known = getattr(ball, key, None)
    if known is None:
        known = bool(test(ball.mid))
        setattr(ball, key, known)
    return known


def pairwise_sum(values: np.ndarray, axis=-1) -> tuple[np.ndarray, int]:
    """(sums over ``axis`` by pairwise addition, levels): every term passes through at most
    ``levels`` = ceil(log2 n) roundings, so each sum errs by at most
    gamma(levels) sum |terms|, gamma(k) = k u / (1 - k u)."""
    values = np.moveaxis(np.asarray(values), axis, -1)
    count = values.shape[-1]
    if count == 0:
        return np.zeros(values.shape[:-1], values.dtype), 0
    levels = (count - 1).bit_length()
    width = 1 << levels
    if width != count:
        padded = np.zeros(values.shape[:-1] + (width,), values.dtype)
        padded[..., :count] = values
        values = padded
    with quiet():
        while values.shape[-1] > 1:
            values = values[..., 0::2] + values[..., 1::2]
    return values[..., 0], levels


def _gamma(levels: int, unit: float) -> float:
    return levels * unit / (1 - levels * unit) if levels else 0.0


class BallBackend:
    """Vectorised ball arithmetic in one Precision: what a loss's reference is written in."""

    def __init__(self, precision: Precision, exact_sums: bool = False):
        self.precision = precision
        self.exact_sums = exact_sums
        self.name = precision.name + (" (exact sums)" if exact_sums else "")

    def __repr__(self):
        return f"BallBackend({self.name})"

    def asarray(self, values) -> Ball:
        return Ball.exact(values, self.precision)

    def exp(self, a: Ball) -> Ball:
        p = self.precision
        with quiet():
            mid = np.exp(a.mid)
            # |exp(x + d) - exp(x)| <= exp(x) * expm1(|d|), and expm1(r) <= r + r^2 for r <= 1
            # (no second transcendental function for the narrow balls of the fast tiers)
            if np.all(a.rad <= 1):
                propagated = mid * (a.rad * (1 + a.rad))
            else:
                propagated = mid * np.expm1(a.rad)
            wide = ~np.isfinite(propagated)
            if np.any(wide):
                # exp(x + d) - exp(x) <= exp(x + |d|) where the first bound is 0 * inf (exp(x)
                # underflows, the radius is huge: a logit of 1e30 minus the row's max); below
                # -12000 (after a rounding that errs by far less than the number) it is below
                # the smallest normal of either precision.
                top = a.mid + a.rad
                ceiling = np.where(top < -12000, 0, np.exp(top) * p.dtype(1 + 2.0 ** -30))
                propagated = np.where(wide, np.fmin(propagated, ceiling), propagated)
            rad = propagated + LIBM_ULPS * p.unit_roundoff * mid + p.tiny
        return Ball(mid, rad)

    def log1p(self, a: Ball) -> Ball:
        p = self.precision
        with quiet():
            low = a.mid - a.rad
            mid = np.log1p(a.mid)
            # log1p is 1/(1+t)-Lipschitz on [low, inf): the slope is largest at the low end.
            slope = np.where(low > -1, 1 / (1 + low), p.dtype(np.inf))
            rad = slope * a.rad + LIBM_ULPS * p.unit_roundoff * np.abs(mid) + p.tiny
        return Ball(mid, rad)

    @staticmethod
    def abs(a: Ball) -> Ball:
        return Ball(np.abs(a.mid), a.rad)

    @staticmethod
    def relu(a: Ball) -> Ball:
        """max(a, 0): 1-Lipschitz, so the radius carries over; exactly 0 where the whole ball
        is negative (mid + rad rounds below 0 only where it is: rounding is monotone). A
        distance of relu terms then keeps no radius from a term of -3.4e38."""
        with quiet():
            below = a.mid + a.rad < 0
        return Ball(np.maximum(a.mid, 0), np.where(below, 0, a.rad).astype(a.rad.dtype))

    def softplus(self, a: Ball) -> Ball:
        """log(1 + exp(a)) = max(a, 0) + log1p(exp(-|a|)), stable for every finite a."""
        return self.relu(a) + self.log1p(self.exp(-self.abs(a)))

    def sigmoid(self, a: Ball) -> Ball:
        """1 / (1 + exp(-a)) = exp(-softplus(-a)), stable for every finite a."""
        return self.exp(-self.softplus(-a))

    @staticmethod
    def reshape(a: Ball, shape) -> Ball:
        return Ball(a.mid.reshape(shape), a.rad.reshape(shape))

    def where(self, condition, a, b) -> Ball:
        a, b = self.like(a), self.like(b)
        return Ball(np.where(condition, a.mid, b.mid), np.where(condition, a.rad, b.rad))

    def like(self, value) -> Ball:
        return value if isinstance(value, Ball) else self.asarray(value)

    def matmul(self, a, b) -> Ball:
        """a @ b for 2-D operands (balls, or exact arrays).

        Exact operands (the logits x W^T of a layer, from the inputs) go through
        ``split_product``: a few float64 BLAS products that are each exact, added in this
        precision, so the radius is that addition's rounding, gamma(parts) sum |part|, plus the
        splitting's bound on what it left (zero for the inputs of a layer in float32 or
        narrower). Where the splitting does not apply, one product: however a library orders a
        sum of K products, and whether it fuses multiply and add, it errs by at most gamma(K)
        sum |a_ik b_kj|, bounded by Cauchy-Schwarz, ||a_i|| ||b_j||.

        Balls (a gradient times a weight, often concentrated on a few classes) take the sum
        itself: the radius is (gamma(K) |a| + rad_a) @ |b| + |a| @ rad_b (+ rad_a @ rad_b), one
        more product of non-negative matrices per term, itself within gamma(K) of its value."""
        a, b = self.like(a), self.like(b)
        u, tiny = self.precision.unit_roundoff, self.precision.tiny
        inner = a.mid.shape[-1]
        gamma = _gamma(inner, u)
        with quiet():
            if is_exact(a) and is_exact(b):
                return self._exact_matmul(a.mid, b.mid)
            if self.precision.dtype is not np.float64 and is_exact(b):
                through_blas = self._wide_times_exact(a, b.mid)
                if through_blas is not None:
                    return through_blas
            mid = a.mid @ b.mid
            left = gamma * np.abs(a.mid) + a.rad
            rad = left @ np.abs(b.mid)
            if not is_exact(b):
                rad = rad + (np.abs(a.mid) + a.rad) @ b.rad
            rad = rad * (1 + 2 * gamma) + (inner + 1) * tiny
        return Ball(mid, rad)

    def _wide_times_exact(self, a: Ball, b: np.ndarray) -> Ball | None:
        """a @ b for long double balls a and exact b, through float64 BLAS (numpy's long
        double product is a plain loop, 50-100 times slower): each midpoint is exactly
        hi + lo, two float64 numbers (a 64-bit significand holds 53 bits and 11 more);
        hi @ b comes out exact from ``split_product``'s parts, added in long double; lo @ b is
        2^-53 of it, one product; its error and the radii's product, (gamma(K) |lo| + rad_a)
        @ |b|, one more, in float64 rounded up. None where a part does not fit float64 (the
        caller then multiplies in long double)."""
        dtype, u, tiny = self.precision.dtype, self.precision.unit_roundoff, self.precision.tiny
        as64 = self._in_float64(b)
        if as64 is None:
            return None
        b64 = as64[0]
        hi = a.mid.astype(np.float64)
        lo = (a.mid - hi).astype(np.float64)
        if not (np.isfinite(hi).all() and np.array_equal(hi.astype(dtype) + lo, a.mid)):
            return None  # beyond float64's range, or bits lost below its normal range
        split = split_product(hi, b64, reuse=False)
        if split is None:
            return None
        parts, left = split
        inner = b64.shape[0]
        mid = parts[0].astype(dtype)
        magnitude = np.abs(parts[0]).astype(dtype)
        for part in parts[1:]:
            mid += part
            magnitude += np.abs(part)
        low = lo @ b64
        mid += low
        magnitude += np.abs(low)
        # radii in float64, rounded up: the cast errs by half an ulp, and a radius below the
        # smallest subnormal becomes that subnormal
        rad64 = np.broadcast_to(a.rad, a.mid.shape).astype(np.float64) * (1 + 2.0 ** -51)
        rad64 += np.where(a.rad > 0, 5e-324, 0.0)
        g64 = _gamma(inner, FLOAT64.unit_roundoff)
        bound = ((g64 * np.abs(lo) + rad64) @ np.abs(b64)) * (1 + 2 * g64) + (inner + 1) * 5e-324
        gamma = _gamma(len(parts) + 2, u)  # the parts, low, each added once, in order
        rad = magnitude * dtype(gamma * (1 + 2 * gamma)) + bound.astype(dtype) * dtype(1 + 4 * u)
        if left.any():
            rad += left.astype(dtype) * dtype(1 + 4 * u)
        return Ball(mid, rad + dtype((len(parts) + 2) * tiny))

    def _exact_matmul(self, a: np.ndarray, b: np.ndarray) -> Ball:
        """a @ b of exact operands (midpoints of radius 0), as a ball of this precision."""
        dtype, u, tiny = self.precision.dtype, self.precision.unit_roundoff, self.precision.tiny
        inner = a.shape[-1]
        as64 = self._in_float64(a, b)
        split = None if as64 is None else split_product(*as64)
        if split is None:
            mid = a @ b
            bound = np.outer(norms(a, axis=-1), norms(b, axis=0))
            # the norms' own rounding (squares, their sum, the root, the scaling)
            rad = _gamma(inner, u) * bound * (1 + 4 * _gamma(inner + 4, u))
            return Ball(mid, rad + (inner + 1) * tiny)
        parts, bound = split
        mid = parts[0].astype(dtype)  # a copy: the sum accumulates in place
        magnitude = np.abs(mid)
        for part in parts[1:]:
            part = part.astype(dtype, copy=False)
            mid += part
            magnitude += np.abs(part)
        gamma = _gamma(len(parts), u)
        # len(parts) - 1 rounded additions; |part| is exact, its sum within gamma of itself
        magnitude *= dtype(gamma * (1 + 2 * gamma))
        if bound.any():
            magnitude += bound.astype(dtype) * dtype(1 + 2 * u)
        magnitude += dtype(len(parts) * tiny)
        return Ball(mid, magnitude)

    def affine_minus_max(self, a, b, c, width: int):
        """(z - max, k): z = a @ b + c (2-D a and b, c broadcast to the product) as rows of
        ``width``, each row minus its entry at column k (its largest, as computed), and k.

        For exact operands, each exact part of the product (``split_product``) and c have
        that entry subtracted before the parts are added: the differences err by their own
        rounding, not by that of the products. Logits of 1e30 whose differences are small (a
        vocabulary whose bfloat16 weights coincide) then keep those differences exact, where
        z - z_k from rounded logits would be known only to about 1e30 u."""
        a, b, c = self.like(a), self.like(b), self.like(c)
        split = as64 = None
        if is_exact(a) and is_exact(b) and is_exact(c):
            as64 = self._in_float64(a.mid, b.mid, c.mid)
        if as64 is not None:
            a64, b64, c64 = as64
            split = split_product(a64, b64)
        if split is None:
            z = self.matmul(a, b) + c
            z = Ball(z.mid.reshape(-1, width), z.rad.reshape(-1, width))
            rows, k = np.arange(z.shape[0]), np.argmax(z.mid, axis=-1)
            return z - Ball(z.mid[rows, k][:, None], z.rad[rows, k][:, None]), k
        dtype, u, tiny = self.precision.dtype, self.precision.unit_roundoff, self.precision.tiny
        parts, bound = split
        shape = parts[0].shape
        parts = [p.reshape(-1, width) for p in parts]
        parts.append(np.broadcast_to(c64, shape).reshape(-1, width))
        with quiet():
            # k is a decision (any k keeps the math exact): the largest of the rounded sums,
            # then, where the rounding hid the largest (logits of 1e30 that differ by
            # thousands), the largest of the differences
            k = np.argmax(sum(parts[1:], parts[0]), axis=-1)
            rows = np.arange(len(k))
            mid, magnitude = self._minus_column(parts, rows, k)
            for _ in range(2):
                better = np.argmax(mid, axis=-1)
                if not (mid[rows, better] > 0).any():
                    break
                k = better
                mid, magnitude = self._minus_column(parts, rows, k)
            gamma = _gamma(len(parts) + 1, u)  # the differences, then len(parts) - 1 sums
            rad = magnitude * dtype(gamma * (1 + 2 * gamma))
            if bound.any():
                bound = bound.reshape(-1, width)
                rad += (bound + bound[rows, k][:, None]).astype(dtype) * dtype(1 + 2 * u)
            rad += dtype(2 * len(parts) * tiny)
        return Ball(mid, rad), k

    def _in_float64(self, *arrays):
        """The arrays as float64, or None where one holds a number float64 cannot (a long
        double midpoint with more bits): ``split_product`` takes float64."""
        as64 = [v.astype(np.float64, copy=False) for v in arrays]
        if self.precision.dtype is np.float64 or all(
                np.array_equal(v64, v) for v64, v in zip(as64, arrays)):
            return as64
        return None

    def _minus_column(self, parts: list, rows, k):
        """(sum of the parts each minus its column k per row, sum of their magnitudes), in
        this precision: each difference within u of itself, then added in order."""
        mid = magnitude = None
        for part in parts:
            part = part.astype(self.precision.dtype, copy=False)
            difference = part - part[rows, k][:, None]
            if mid is None:
                mid, magnitude = difference, np.abs(difference)
            else:
                mid += difference
                magnitude += np.abs(difference)
        return mid, magnitude

    @staticmethod
    def transpose(a: Ball) -> Ball:
        return Ball(a.mid.T, a.rad.T)

    @staticmethod
    def argmax(a: Ball, axis=-1) -> np.ndarray:
        """Where the midpoints are largest (a decision: any choice keeps the math exact)."""
        return np.argmax(a.mid, axis=axis)

    def sum(self, a: Ball, axis=None) -> Ball:
        """The sum over ``axis`` (every element when None): pairwise, or exact midpoint sums."""
        a = self.like(a)
        mid = a.mid.reshape(-1) if axis is None else np.moveaxis(a.mid, axis, -1)
        rad = a.rad.reshape(-1) if axis is None else np.moveaxis(a.rad, axis, -1)
        if self.exact_sums:
            return _exact_sum(mid, rad, self.precision)
        u, tiny = self.precision.unit_roundoff, self.precision.tiny
        with quiet():
            total, levels = pairwise_sum(mid)
            magnitude, _ = pairwise_sum(np.abs(mid))
            radii, _ = pairwise_sum(rad)
            gamma = _gamma(levels, u)
            error = (radii + gamma * magnitude) * (1 + 2 * gamma) + levels * tiny
        return Ball(total, error)


def _exact_sum(mid: np.ndarray, rad: np.ndarray, precision: Precision) -> Ball:
    """Sums over the last axis with exactly added midpoints (``math.fsum`` on an exact
    double-double split of each), radii added up; a row whose midpoints overflow float64's
    range in the sum gets an infinite radius (left to a slower tier)."""
    count = mid.shape[-1]
    rows = mid.reshape(int(np.prod(mid.shape[:-1])), count)
    with quiet():
        high = rows.astype(np.float64)
        low = (rows - high).astype(np.float64)  # exact for a 64-bit significand
    dtype, u = precision.dtype, precision.unit_roundoff
    out_mid = np.empty(rows.shape[0], dtype=dtype)
    out_err = np.zeros(rows.shape[0], dtype=dtype)
    for i in range(rows.shape[0]):
        parts = high[i].tolist() + low[i].tolist()
        try:
            if not all(map(math.isfinite, parts)):
                raise OverflowError
            first = math.fsum(parts)
            second = math.fsum(parts + [-first]) if math.isfinite(first) else 0.0
        except OverflowError:  # an infinite term, or an intermediate beyond float64's range
            with quiet():
                out_mid[i], out_err[i] = np.sum(rows[i]), dtype(np.inf)
            continue
        out_mid[i] = dtype(first) + dtype(second)
        out_err[i] = dtype(math.ulp(second)) if second else dtype(0)
    # Midpoints below float64's subnormal range lose bits in the split: bound what is lost.
    with quiet():
        lost = np.where(np.isfinite(rows), np.abs(rows - high - low), 0)
        out_err += np.sum(lost, axis=-1)
        rad_sum = np.sum(rad, axis=-1).reshape(-1) * (1 + dtype(2) * count * u)
        total_rad = rad_sum + out_err + u * np.abs(out_mid)
    shape = mid.shape[:-1]
    return Ball(out_mid.reshape(shape), total_rad.reshape(shape))


FLOAT64_BALLS = BallBackend(FLOAT64)
LONG_DOUBLE_BALLS = BallBackend(LONG_DOUBLE)
EXACT_SUM_BALLS = BallBackend(LONG_DOUBLE, exact_sums=True)
