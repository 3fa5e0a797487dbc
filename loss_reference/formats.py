"""Floating-point formats the suite judges, and exact rounding into them.

A format is described by its precision (significand bits, implicit bit included), its smallest
normal exponent and its largest finite value. Rounding is round-to-nearest-even, done without
double rounding: from numpy long double (``round_to_format``) or from an exact dyadic rational
(``round_dyadic``). Both also say whether the input lay exactly on a tie, so that callers can
refuse to certify values whose rounding depends on bits they do not have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


_EXPONENT_FIELD = np.uint64(0x7FF0000000000000)  # of a float64's bits
_SIGNIFICAND_FIELD = np.uint64(0x000FFFFFFFFFFFFF)


def _bits(value: np.ndarray) -> np.ndarray:
    """A float64 array's bit patterns, as uint64 (of a contiguous copy where it is a view)."""
    return (value if value.flags.c_contiguous else np.ascontiguousarray(value)).view(np.uint64)


ESTIMATE_ULPS = 1 / 64  # how far Evaluated.exact may be from the exact value, in ulps


@dataclass(frozen=True)
class Format:
    """An IEEE-style binary floating-point format."""

    name: str
    precision: int  # significand bits, implicit bit included
    min_exponent: int  # exponent e of the smallest normal number 2**e
    max_finite: float

    @property
    def unit_roundoff(self) -> float:
        """u = 2**-precision: the largest relative error of one correctly rounded operation."""
        return 2.0 ** -self.precision

    @property
    def smallest_subnormal(self) -> float:
        """The spacing of the format's numbers near zero."""
        return 2.0 ** (self.min_exponent - self.precision + 1)

    def ulp(self, value: np.ndarray) -> np.ndarray:
        """The spacing of the format's numbers at |value| (a float64 array); inf for non-finite."""
        return np.asarray(blockwise(self._ulp_block, np.asarray(value, dtype=np.float64)))

    def _ulp_block(self, value: np.ndarray) -> np.ndarray:
        # The exponent field alone is 2**floor(log2 |value|) for a normal float64 (inf for inf
        # and NaN; 0 for zero and float64 subnormals, which lie below every format's normal
        # range): scaled to the format's last significand bit, and never below its subnormal
        # spacing. Three operations a block, where frexp and ldexp took a dozen.
        power = (_bits(value) & _EXPONENT_FIELD).view(np.float64)
        return np.maximum(power * 2.0 ** (1 - self.precision), self.smallest_subnormal)

    def gaps(self, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ulp, narrower gap) of numbers of the format, float64 arrays of value's shape. The
        narrower gap is the smaller of the gaps to a number's two neighbours (half its ulp at
        a power of two above the smallest normal, its ulp elsewhere); half of each gap is how
        far the number's rounding interval reaches on that side. In one pass, without blocks
        (``engine.certify``, its caller, passes blocks)."""
        value = np.asarray(value, dtype=np.float64)
        spacing = self._ulp_block(value)
        # A power of two (no significand bits) above the smallest normal: its lower neighbour
        # is half an ulp away. Comparisons with NaN are false, and inf stays inf.
        power = (((_bits(value) & _SIGNIFICAND_FIELD) == 0)
                 & (np.abs(value) > 2.0 ** self.min_exponent))
        return np.asarray(spacing), np.asarray(np.where(power, spacing / 2, spacing))

    @property
    def overflow_threshold(self) -> float:
        """Where rounding to the format gives infinity (max_finite plus half an ulp), as a
        long double (it exceeds float64's range for float64 itself)."""
        half = np.longdouble(float(self.ulp(np.array(self.max_finite)))) / 2
        return np.longdouble(self.max_finite) + half


FORMATS = {
    "float64": Format("float64", 53, -1022, float(np.finfo(np.float64).max)),
    "float32": Format("float32", 24, -126, float(np.finfo(np.float32).max)),
    "float16": Format("float16", 11, -14, 65504.0),
    "bfloat16": Format("bfloat16", 8, -126, float.fromhex("0x1.fep127")),
}


DTYPES = tuple(FORMATS)  # the dtypes the suite judges, widest first


def format_of(dtype_name: str) -> Format:
    """The Format for a dtype name such as 'float32'; raises ValueError naming the known ones."""
    try:
        return FORMATS[dtype_name]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype_name!r}; known: {', '.join(FORMATS)}") from None


def round_to_format(values: np.ndarray, fmt: Format) -> tuple[np.ndarray, np.ndarray]:
    """Round long-double ``values`` to ``fmt`` (nearest, ties to even), exactly.

    Returns (rounded as float64, is_tie) where is_tie marks inputs that lay exactly halfway
    between two numbers of the format. NaN and infinities pass through.
    """
    values = np.asarray(values, dtype=np.longdouble)
    finite = np.isfinite(values)
    safe = np.where(finite, values, 0)
    _, exponent = np.frexp(safe)
    quantum = np.maximum(exponent, fmt.min_exponent + 1) - fmt.precision
    scaled = np.ldexp(safe, -quantum)  # exact: a power-of-two scaling
    rounded_scaled = np.rint(scaled)  # round half to even, exact
    is_tie = finite & (np.abs(scaled - np.trunc(scaled)) == 0.5)
    with np.errstate(over="ignore"):  # beyond float64: inf, as beyond the format below
        rounded = np.ldexp(rounded_scaled, quantum).astype(np.float64)
    rounded = np.where(np.abs(rounded) > fmt.max_finite, np.copysign(np.inf, rounded), rounded)
    rounded = np.where(finite, rounded, values.astype(np.float64))
    return rounded, is_tie


ROUND_BLOCK = 1 << 16  # elements per block: a dozen temporaries of it stay in the caches


def round_float64(values: np.ndarray, fmt: Format) -> np.ndarray:
    """Round float64 ``values`` to ``fmt`` (nearest, ties to even), exactly; fast.

    The same result as ``round_to_format(values, fmt)[0]`` for float64 inputs, in float64
    arithmetic: normal results by rounding the bit pattern's significand (ties to even, a carry
    moving into the exponent as it should), results below the smallest normal by an exact
    power-of-two scaling and ``rint``. Overflow gives infinities; NaN passes through. Large
    arrays go by blocks of ``ROUND_BLOCK`` (3-4 times faster than whole-array temporaries).
    """
    values = np.asarray(values, dtype=np.float64)
    if fmt.precision == 53:
        return values.copy()
    # an array also for a 0-d input (numpy's operations on one return a scalar)
    return np.asarray(blockwise(lambda block: _round_block(block, fmt), values))


def blockwise(function, values: np.ndarray) -> np.ndarray:
    """``function(values)`` for an elementwise float64 ``function``, by blocks of
    ``ROUND_BLOCK`` elements when ``values`` is larger: the same result, 3-4 times faster for
    a chain of numpy operations on arrays far beyond the caches."""
    if values.size <= ROUND_BLOCK:
        return function(values)
    flat, result = values.reshape(-1), np.empty(values.size)
    for start in range(0, values.size, ROUND_BLOCK):
        result[start:start + ROUND_BLOCK] = function(flat[start:start + ROUND_BLOCK])
    return result.reshape(values.shape)


def _round_block(values: np.ndarray, fmt: Format) -> np.ndarray:
    drop = 53 - fmt.precision  # significand bits to drop
    bits = values.view(np.uint64)
    keep_lsb = (bits >> np.uint64(drop)) & np.uint64(1)
    bias = np.uint64((1 << (drop - 1)) - 1) + keep_lsb
    mask = ~np.uint64((1 << drop) - 1)
    rounded = ((bits + bias) & mask).view(np.float64)
    magnitude = np.abs(values)
    # Most blocks hold neither results below the smallest normal nor beyond the largest
    # finite number, infinities or NaNs (each comparison below is False for a NaN).
    if magnitude.size == 0 or (magnitude.min() >= 2.0 ** fmt.min_exponent
                               and magnitude.max() <= fmt.max_finite):
        return rounded
    quantum = fmt.smallest_subnormal
    with np.errstate(over="ignore", invalid="ignore"):
        small = np.rint(values / quantum) * quantum  # exact: power-of-two scaling
        rounded = np.where(magnitude < 2.0 ** fmt.min_exponent, small, rounded)
        rounded = np.where(np.abs(rounded) > fmt.max_finite, np.copysign(np.inf, values),
                           rounded)
    return np.where(np.isfinite(values), rounded, values)


def round_dyadic(mantissa: int, exponent: int, fmt: Format) -> tuple[float, bool]:
    """Round the exact number ``mantissa * 2**exponent`` to ``fmt`` (nearest, ties to even).

    Returns (float, is_tie). Integer arithmetic only, so any exponent (arb balls can carry
    exponents far outside float range) costs the same.
    """
    if mantissa == 0:
        return 0.0, False
    sign = -1.0 if mantissa < 0 else 1.0
    mantissa = abs(mantissa)
    top = exponent + mantissa.bit_length() - 1  # floor(log2 |value|)
    if top > 1100:  # beyond every format's range
        return sign * math.inf, False
    quantum = max(top, fmt.min_exponent) - fmt.precision + 1
    shift = quantum - exponent
    if shift <= 0:
        kept, is_tie = mantissa << -shift, False
    elif shift > mantissa.bit_length() + 1:  # far below half a quantum
        kept, is_tie = 0, False
    else:
        kept, dropped = mantissa >> shift, mantissa & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        is_tie = dropped == half
        if dropped > half or (is_tie and kept % 2 == 1):
            kept += 1
    try:
        result = math.ldexp(kept, quantum)
    except OverflowError:
        result = math.inf
    if result > fmt.max_finite:
        result = math.inf
    return sign * result, is_tie
