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

from loss_reference.engine import Evaluated, parallel_map
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
    one subnormal unit absolutely, and a later multiplication by |w x| carries that along. An
    output that reduces terms adds their amplifications, over the terms that may underflow,
    and divides by what the reduction divides by: n terms that each round to the subnormal
    grid can each lose a unit, and a mean divides those losses again.
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
    shape = np.shape(reference.rounded)
    return _Tolerance(magnitude, fmt, shape).allowed(np.asarray(reference.rounded), slice(None))


class _Tolerance:
    """``allowed_error``'s terms for one output, its per-element ones flattened once (scalars
    as they are), so that a block of the output costs a few passes over that block alone."""

    def __init__(self, magnitude: Magnitude, fmt: Format, shape: tuple):
        summation = summation_units(magnitude.terms, magnitude.summation)
        self.fmt = fmt
        self.relative = (magnitude.depth * fmt.unit_roundoff
                         + summation * accumulation_roundoff(fmt))
        self.floor_units = (magnitude.depth + summation) * fmt.smallest_subnormal
        self.scale = _flat(magnitude.scale, shape)
        self.amplification = _flat(magnitude.amplification, shape)
        self.slack = _flat(magnitude.slack, shape)

    def allowed(self, rounded: np.ndarray, block) -> np.ndarray:
        """The allowed error of the elements ``block`` (a slice of the flattened output, or
        everything) whose rounded exact values are ``rounded``."""
        def part(term):
            return term if term.ndim == 0 else (term[block] if rounded.ndim == 1
                                                else term.reshape(rounded.shape))
        with np.errstate(over="ignore", invalid="ignore"):
            bound = self.relative * np.abs(part(self.scale)) + self.fmt.ulp(rounded)
            amplification = np.maximum(1.0, np.abs(part(self.amplification)))
            bound += self.floor_units * amplification + part(self.slack)
        return bound


def _flat(values: np.ndarray, shape: tuple) -> np.ndarray:
    """``values`` as a 0-d array where it is one number, else broadcast to ``shape`` and
    flattened (a view where it already has that shape)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 1:
        return values.reshape(())
    return np.broadcast_to(values, shape).reshape(-1)


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


COMPARE_BLOCK = 1 << 16  # elements judged at a time: the temporaries stay in the caches
RUN_BLOCKS = 16  # blocks a thread judges in a row


def compare(candidate: np.ndarray, reference: Evaluated, magnitude: Magnitude,
            fmt: Format) -> Comparison:
    """Judge candidate values (float64, same shape) against the certified reference, by
    blocks of COMPARE_BLOCK elements (a language model's gradient holds 65 million: each
    whole-array pass wrote 520 MB, and the judgement took 15 s of a 25 s test)."""
    expected = np.asarray(reference.rounded)
    if expected.size == 0:
        return Comparison(True, "", 0.0, 0.0, 0.0, None, None, None, None)
    shape = expected.shape
    tolerance = _Tolerance(magnitude, fmt, shape)
    flat_candidate = np.asarray(candidate, dtype=np.float64).reshape(-1)
    flat_expected, flat_exact = expected.reshape(-1), np.asarray(reference.exact).reshape(-1)

    def exact_float64(where):  # an exact value beyond float64's range is inf, silently
        with np.errstate(over="ignore"):
            return flat_exact[where].astype(np.float64)

    with np.errstate(invalid="ignore", over="ignore"):
        overflow_threshold = fmt.max_finite + fmt.ulp(np.array(fmt.max_finite)) / 2

    def judge(starts) -> _Worst:
        worst = _Worst()
        for start in starts:
            block = slice(start, start + COMPARE_BLOCK)
            worst.add(start, *_judge_block(flat_candidate[block], flat_expected[block],
                                           exact_float64(block),
                                           tolerance.allowed(flat_expected[block], block),
                                           overflow_threshold, fmt))
        return worst

    # runs of blocks on the reference's threads, merged in order (numpy's passes release the
    # GIL)
    starts = range(0, expected.size, COMPARE_BLOCK)
    runs = parallel_map(judge, [starts[i:i + RUN_BLOCKS] for i in range(0, len(starts),
                                                                        RUN_BLOCKS)])
    worst = runs[0]
    for later in runs[1:]:
        worst.merge(later)
    index = worst.index
    worst_index = tuple(int(i) for i in np.unravel_index(index, shape))
    passed = worst.ratio <= 1.0
    problem = ""
    if not passed:
        if not np.isfinite(flat_expected[index]):
            problem = (f"expected {flat_expected[index]} (the exact result), got "
                       f"{flat_candidate[index]}")
        elif not np.isfinite(flat_candidate[index]):
            problem = f"got {flat_candidate[index]} where the exact result is finite"
        else:
            problem = "error exceeds the tolerance"
    return Comparison(passed, problem, worst.ulps, worst.ratio, worst.relative, worst_index,
                      float(flat_candidate[index]), float(exact_float64(index)),
                      worst.allowed)


def _judge_block(candidate, expected, exact, allowed, overflow_threshold, fmt: Format):
    """(ratio, ulps, largest relative error) of one block: error / allowed per element (inf
    where a non-finite value is wrong, 0 where it is right, 1 for a tolerated overflow), the
    error in ulps, and ``relative_error``."""
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(candidate - exact)
        ratio = np.where(allowed > 0, error / allowed, np.where(error == 0, 0.0, np.inf))
        special = ~np.isfinite(expected)
        same_special = (np.isnan(expected) & np.isnan(candidate)) | (
            np.isinf(expected) & (candidate == expected))
        ratio = np.where(special, np.where(same_special, 0.0, np.inf), ratio)
        # Next to the edge of the range, a value within the tolerance may round to infinity.
        may_overflow = ~special & (np.abs(exact) + allowed >= overflow_threshold)
        tolerated_inf = may_overflow & np.isinf(candidate) & (np.sign(candidate)
                                                              == np.sign(exact))
        ratio = np.where(~special & ~np.isfinite(candidate) & ~tolerated_inf, np.inf, ratio)
        ratio = np.where(tolerated_inf, 1.0, ratio)
        ulps = np.where(special, np.where(same_special, 0.0, np.inf),
                        ulp_error(candidate, exact, fmt))
    return ratio, ulps, allowed, relative_error(candidate, exact, special)


class _Worst:
    """The running verdict over blocks: the first element of the largest ratio (a NaN ratio
    counts as infinite), its ratio and allowed error, the largest ulps (NaN only where every
    element's is) and relative error."""

    def __init__(self):
        self.key, self.index, self.ratio, self.allowed = -np.inf, 0, 0.0, 0.0
        self.ulps, self.relative = np.nan, 0.0

    def add(self, start: int, ratio, ulps, allowed, relative: float) -> None:
        key = np.where(np.isnan(ratio), np.inf, ratio)
        i = int(np.argmax(key))
        if key[i] > self.key:  # strictly: the first such element overall
            self.key, self.index = key[i], start + i
            self.ratio, self.allowed = float(ratio[i]), float(allowed[i])
        self.ulps = float(np.fmax(self.ulps, np.fmax.reduce(ulps)))
        self.relative = max(self.relative, relative)

    def merge(self, later: "_Worst") -> None:
        """Take in the verdict of blocks after this one's."""
        if later.key > self.key:
            self.key, self.index, self.ratio, self.allowed = (later.key, later.index,
                                                               later.ratio, later.allowed)
        self.ulps = float(np.fmax(self.ulps, later.ulps))
        self.relative = max(self.relative, later.relative)


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
