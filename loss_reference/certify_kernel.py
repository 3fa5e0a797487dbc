"""``engine.certify`` of float64 balls as one compiled pass (numba): the same decisions, bit for
bit, as its numpy blocks (``engine._certify_block``); and likewise
``compiled_kernels.certify_narrower`` of double-doubles (``certify_narrower_elements``).

Why: certification is the last step of every fast tier, and its numpy form makes a dozen passes
over temporaries (rounding by the bit pattern, the gaps, four comparisons): 6 ms for a language
model head's weight gradient (4096 x 65), a tenth of its whole reference. One loop does it in a
fraction of that. Each element's test is the numpy form's, operation for operation, in float64
(numba never contracts a * b + c into a fused multiply-add without ``fastmath``, which is not
set), so the two agree exactly; ``tests/test_certify_kernel.py`` checks that on every kind of
element. Its own module: it inlines nothing from ``double_double``, so numba's on-disk cache of
the one never holds a kernel compiled against an older version of the other.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_EXPONENT_FIELD = np.uint64(0x7FF0000000000000)
_SIGNIFICAND_FIELD = np.uint64(0x000FFFFFFFFFFFFF)
_TWO_52 = 2.0 ** 52  # adding and subtracting it rounds 0 <= y < 2^52 to an integer, ties to even
_TINY = 2.0 ** -1022  # float64's smallest normal: the radii's floor, as the numpy form's
_SLACK = 1 + 2.0 ** -50  # for the two rounded operations of the test itself
_WIDEN = 1.0001  # the radii's widening, for their own rounding


@njit(cache=True, nogil=True, inline="always")
def _bits(value):
    return np.float64(value).view(np.uint64)


@njit(cache=True, nogil=True, inline="always")
def _float(bits):
    return np.uint64(bits).view(np.float64)


@njit(cache=True, nogil=True, inline="always")
def _round(value, drop, min_normal, quantum, max_finite):
    """``formats._round_block`` of one element, operation for operation: the bit pattern's
    significand rounded to nearest, ties to even (a carry moving into the exponent); below the
    format's normal range a multiple of ``quantum`` by ``rint`` (here: adding and subtracting
    2^52, the same rounding for 0 <= y < 2^52); beyond its largest finite number, infinity."""
    if drop == 0 or not abs(value) < np.inf:
        return value
    if abs(value) < min_normal:
        return math.copysign(((abs(value) / quantum + _TWO_52) - _TWO_52) * quantum, value)
    bits = _bits(value)
    keep_lsb = (bits >> np.uint64(drop)) & np.uint64(1)
    bias = np.uint64((1 << (drop - 1)) - 1) + keep_lsb
    rounded = _float((bits + bias) & ~np.uint64((1 << drop) - 1))
    if abs(rounded) > max_finite:
        return math.copysign(np.inf, value)
    return rounded


@njit(cache=True, nogil=True, inline="always")
def _certified(m, r0, drop, min_normal, quantum, ulp_scale, max_finite, overflow,
               estimate_ulps):
    """(m rounded, ok) of one ball m within r0: ``engine._certify_block``'s test."""
    r = _round(m, drop, min_normal, quantum, max_finite)
    # the format's gaps at r, as ``Format.gaps``: its ulp from r's exponent field (0 for
    # zero and float64 subnormals, inf for inf and NaN), never below the subnormal
    # spacing; half of it at a power of two above the smallest normal
    bits = _bits(r)
    spacing = max(_float(bits & _EXPONENT_FIELD) * ulp_scale, quantum)
    if (bits & _SIGNIFICAND_FIELD) == 0 and abs(r) > min_normal:
        narrower = spacing / 2
    else:
        narrower = spacing
    half_up, half_down = spacing / 2, narrower / 2
    widened = r0 * _WIDEN + _TINY
    away = (m - r) * (-1.0 if r < 0 else 1.0)
    inside = ((away + widened) * _SLACK < half_up) and ((widened - away) * _SLACK
                                                        < half_down)
    precise = widened <= half_down * (2 * estimate_ulps)
    finite = abs(r) < np.inf  # False for inf and NaN
    beyond = (abs(m) - widened) / _SLACK > overflow
    exact = r0 == 0
    ok = ((finite and inside and precise)
          or (not finite and beyond and abs(widened) < np.inf) or exact)
    if exact and not abs(m) < np.inf:  # an exact infinity or NaN stays as it is
        r = m
    return r, ok


@njit(cache=True, nogil=True)
def certify_elements(mid, rad, precision, min_exponent, max_finite, overflow, estimate_ulps,
                     rounded, ok):
    """``engine._certify_block`` for 1-D float64 ``mid`` and ``rad`` into ``rounded`` and
    ``ok``. ``overflow``: the format's overflow threshold as a float64, as the numpy form
    compares with it (inf for float64 itself, whose threshold exceeds its range)."""
    drop = 53 - precision
    min_normal = 2.0 ** min_exponent
    quantum = 2.0 ** (min_exponent - precision + 1)  # the format's smallest subnormal
    ulp_scale = 2.0 ** (1 - precision)
    for i in range(mid.size):
        rounded[i], ok[i] = _certified(mid[i], rad[i], drop, min_normal, quantum, ulp_scale,
                                       max_finite, overflow, estimate_ulps)


@njit(cache=True, nogil=True)
def certify_narrower_elements(hi, lo, error, precision, min_exponent, max_finite, overflow,
                              estimate_ulps, rounded, ok):
    """``compiled_kernels.certify_narrower``'s numpy form for 1-D double-doubles hi + lo,
    each within ``error``, into ``rounded`` and ``ok``, in one pass: each ball hi within
    |lo| + error certified as ``certify_elements`` does, and where that fails, |lo| exceeds
    the error and hi is a tie of the format, hi + lo rounded as hi's next float64 number
    towards lo."""
    drop = 53 - precision
    min_normal = 2.0 ** min_exponent
    quantum = 2.0 ** (min_exponent - precision + 1)
    ulp_scale = 2.0 ** (1 - precision)
    for i in range(hi.size):
        h, low = hi[i], lo[i]
        r, certified = _certified(h, abs(low) + error[i], drop, min_normal, quantum,
                                  ulp_scale, max_finite, overflow, estimate_ulps)
        if (not certified and abs(low) > error[i] * (1 + 2.0 ** -40)
                and _is_tie(h, precision, min_exponent)):
            r = _round(_next_towards(h, low), drop, min_normal, quantum, max_finite)
            certified = True
        rounded[i], ok[i] = r, certified


@njit(cache=True, nogil=True, inline="always")
def _is_tie(value, precision, min_exponent):
    """Whether a finite float64 lies exactly halfway between two numbers of the format
    (``formats.round_to_format``'s test: the value over its quantum has a fraction of 1/2)."""
    if not abs(value) < np.inf:
        return False
    exponent = math.frexp(value)[1]
    scaled = math.ldexp(abs(value), precision - max(exponent, min_exponent + 1))
    return scaled - math.floor(scaled) == 0.5


@njit(cache=True, nogil=True, inline="always")
def _next_towards(value, direction):
    """The float64 next to a nonzero finite ``value`` towards ``direction``'s sign."""
    bits = _bits(value)
    if (value > 0) == (direction > 0):
        return _float(bits + np.uint64(1))
    return _float(bits - np.uint64(1))
