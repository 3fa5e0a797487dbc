"""ULP distance and the tolerance policy.

An output element passes when

    |candidate - exact| <= depth * u * S  +  summation(n) * u_acc * S  +  ulp(rounded exact)
                           +  (depth + summation(n)) * smallest_subnormal * amplification

where u is the unit roundoff of the dtype under test; u_acc that of the precision reductions
accumulate in (float32 for float16 and bfloat16, as torch, cuBLAS and Triton's tl.sum do; the
dtype itself otherwise); S the sum of the magnitudes of the terms the exact value is computed
from (declared per loss and output in its spec: it makes the bound condition-aware, since a
result that cancels is only as accurate as its terms); depth the number of rounded operations
on the way from one input element to one term (a libm call counts as two); and summation(n)
the worst-case error, in units of u_acc, of adding n terms:

    cascade:    min(n - 1, 15 + ceil(log2 n))   pairwise over blocks of <= 16 (numpy, torch.sum)
    sequential: n - 1                            a loop (torch's multilabel_margin_loss backward)

A spec declares which summation its reference algorithm (torch's) uses. The ulp term allows the
final rounding to the output dtype; the subnormal term allows intermediates that underflow,
whose absolute error later factors can magnify (Magnitude.amplification). The README derives
the rule in full.

Non-finite values are judged exactly: NaN where the exact result is undefined, the infinity of
the right sign where the exact result overflows the dtype, finite everywhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loss_reference.engine import Evaluated
from loss_reference.formats import Format


@dataclass
class Magnitude:
    """What the tolerance of one output depends on besides its dtype.

    scale: S per output element (sum of |terms|, same shape as the output);
    terms: how many terms each output element reduces;
    depth: rounded operations per term;
    slack: an absolute allowance per element where the function jumps within rounding
    distance of its input (a hinge's gradient at its kink), so either side is right;
    amplification: how much the factors applied after the first rounded operation can magnify
    an absolute error (>= 1): an intermediate that underflows into the subnormals errs by up to
    one subnormal unit absolutely, and a later multiplication by |w x| carries that along.
    """

    scale: np.ndarray
    terms: int
    depth: int
    slack: np.ndarray | float = 0.0
    amplification: np.ndarray | float = 1.0
    summation: str = "cascade"  # or "sequential"


def summation_units(terms: int, summation: str = "cascade") -> int:
    """Worst-case error of a sum of ``terms`` numbers, in units of the accumulation roundoff."""
    if terms <= 1:
        return 0
    if summation == "sequential":
        return terms - 1
    return min(terms - 1, 15 + math.ceil(math.log2(terms)))


ACCUMULATION_ROUNDOFF = 2.0 ** -24  # float32, what half-precision reductions accumulate in


def accumulation_roundoff(fmt: Format) -> float:
    """Unit roundoff of the precision a reduction over ``fmt`` values accumulates in."""
    return min(fmt.unit_roundoff, ACCUMULATION_ROUNDOFF)


def allowed_error(reference: Evaluated, magnitude: Magnitude, fmt: Format) -> np.ndarray:
    """The largest error the tolerance policy accepts, per output element."""
    summation = summation_units(magnitude.terms, magnitude.summation)
    relative = magnitude.depth * fmt.unit_roundoff + summation * accumulation_roundoff(fmt)
    scale = np.abs(np.asarray(magnitude.scale, dtype=np.float64))
    with np.errstate(over="ignore", invalid="ignore"):
        bound = relative * scale + fmt.ulp(reference.rounded)
        amplification = np.maximum(1.0, np.abs(magnitude.amplification))
        bound += ((magnitude.depth + summation) * fmt.smallest_subnormal * amplification
                  + magnitude.slack)
    return bound


def ulp_error(candidate: np.ndarray, exact: np.ndarray, fmt: Format) -> np.ndarray:
    """|candidate - exact| in ulps of the dtype at the exact value (the reference's estimate
    in float64; 0 where both agree exactly)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.abs(candidate - exact) / fmt.ulp(exact)


@dataclass
class Comparison:
    """The verdict on one output array, with the worst element behind it."""

    passed: bool
    problem: str  # "" when passed; otherwise what is wrong, in words
    max_ulp: float
    max_ratio: float  # error / allowed error at the worst element (<= 1 passes)
    # largest |candidate - exact| / |exact| over the elements whose exact value is not 0
    max_rel: float
    worst_index: tuple | None
    worst_candidate: float | None
    worst_exact: float | None
    worst_allowed: float | None


def compare(candidate: np.ndarray, reference: Evaluated, magnitude: Magnitude,
            fmt: Format) -> Comparison:
    """Judge candidate values (float64, same shape) against the certified reference."""
    expected = reference.rounded
    exact = reference.exact.astype(np.float64)
    allowed = allowed_error(reference, magnitude, fmt)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(candidate - exact)
        ratio = np.where(allowed > 0, error / allowed, np.where(error == 0, 0.0, np.inf))
    special = ~np.isfinite(expected)
    same_special = (np.isnan(expected) & np.isnan(candidate)) | (
        np.isinf(expected) & (candidate == expected))
    ratio = np.where(special, np.where(same_special, 0.0, np.inf), ratio)
    # Next to the edge of the range, a value within the tolerance may round to infinity.
    with np.errstate(invalid="ignore", over="ignore"):
        overflow_threshold = fmt.max_finite + fmt.ulp(np.array(fmt.max_finite)) / 2
        may_overflow = np.isfinite(expected) & (np.abs(exact) + allowed >= overflow_threshold)
    tolerated_inf = may_overflow & np.isinf(candidate) & (np.sign(candidate) == np.sign(exact))
    ratio = np.where(~special & ~np.isfinite(candidate) & ~tolerated_inf, np.inf, ratio)
    ratio = np.where(tolerated_inf, 1.0, ratio)
    ulps = np.where(special, np.where(same_special, 0.0, np.inf),
                    ulp_error(candidate, exact, fmt))
    if ratio.size == 0:
        return Comparison(True, "", 0.0, 0.0, 0.0, None, None, None, None)
    worst = np.unravel_index(int(np.nanargmax(np.where(np.isnan(ratio), np.inf, ratio))),
                             ratio.shape)
    worst_ratio = float(ratio[worst])
    passed = worst_ratio <= 1.0
    problem = ""
    if not passed:
        if special[worst]:
            problem = f"expected {expected[worst]} (the exact result), got {candidate[worst]}"
        elif not np.isfinite(candidate[worst]):
            problem = f"got {candidate[worst]} where the exact result is finite"
        else:
            problem = "error exceeds the tolerance"
    return Comparison(passed, problem, float(np.nanmax(ulps)), worst_ratio,
                      relative_error(candidate, exact, special), tuple(int(i) for i in worst),
                      float(candidate[worst]), float(exact[worst]), float(allowed[worst]))


def relative_error(candidate: np.ndarray, exact: np.ndarray, special: np.ndarray) -> float:
    """max |candidate - exact| / |exact| over finite, nonzero exact values (0.0 if there are none).

    Elements whose exact value is 0 or not finite are left out: their error is judged in ulps
    and by the NaN/inf pattern, where a relative error means nothing.
    """
    judged = ~special & (exact != 0)
    if not judged.any():
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        relative = np.abs(candidate[judged] - exact[judged]) / np.abs(exact[judged])
    return float(np.where(np.isnan(relative), np.inf, relative).max())
