"""The tolerance rule of conformance/accuracy.py, on cases worked out by hand.

    allowed = depth * u * S + summation(n) * u_acc * S + ulp(rounded exact)
              + (depth + summation(n)) * smallest_subnormal * max(1, |amplification|) + slack

Each expected bound below is written as the arithmetic that produces it, in powers of two, so
that a wrong term (a missing ulp, the dtype's u where the float32 accumulator's belongs, a
summation count off by one) changes the number.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mpmath import mp

from conformance.accuracy import (ACCUMULATION_ROUNDOFF, Magnitude, accumulation_roundoff,
                                  allowed_error, compare, summation_units)
from loss_reference.engine import LD, Evaluated
from loss_reference.formats import FORMATS, round_float64

F64, F32, F16, BF16 = (FORMATS[n] for n in ("float64", "float32", "float16", "bfloat16"))


def reference(rounded, exact=None) -> Evaluated:
    """An Evaluated whose exact value is ``exact`` (default: the rounded value itself)."""
    rounded = np.asarray(rounded, dtype=np.float64)
    exact = rounded if exact is None else exact
    return Evaluated(rounded, np.asarray(exact, dtype=LD))


# --- summation_units -----------------------------------------------------------------------------

@pytest.mark.parametrize("terms, summation, expected", [
    (0, "cascade", 0), (1, "cascade", 0), (0, "sequential", 0), (1, "sequential", 0),
    (2, "cascade", 1),       # min(1, 15 + 1)
    (16, "cascade", 15),     # min(15, 15 + 4): one block of 16 is a plain loop
    (17, "cascade", 16),     # min(16, 15 + 5)
    (21, "cascade", 20),     # min(20, 15 + 5): the two rules meet
    (22, "cascade", 20),     # min(21, 15 + 5): the logarithmic rule takes over
    (32, "cascade", 20),     # min(31, 15 + 5)
    (33, "cascade", 21),     # min(32, 15 + 6)
    (1024, "cascade", 25),   # 15 + 10
    (1025, "cascade", 26),   # 15 + ceil(10.001)
    (4096, "cascade", 27),   # 15 + 12
    (2, "sequential", 1),
    (150, "sequential", 149),
    (4096, "sequential", 4095),
])
def test_summation_units(terms, summation, expected):
    assert summation_units(terms, summation) == expected


def test_summation_units_default_is_cascade_and_bounded_by_a_loop():
    previous = 0
    for n in range(0, 5000, 7):
        cascade = summation_units(n)
        assert cascade == summation_units(n, "cascade")
        assert cascade <= summation_units(n, "sequential") == max(n - 1, 0)
        assert cascade >= previous  # more terms never tighten the bound
        previous = cascade


# --- accumulation_roundoff -----------------------------------------------------------------------

@pytest.mark.parametrize("fmt, expected", [
    (F64, 2.0 ** -53),  # float64 accumulates in float64
    (F32, 2.0 ** -24),
    (F16, 2.0 ** -24),  # half precision accumulates in float32, not in its own 2**-11
    (BF16, 2.0 ** -24),  # ... nor in 2**-8
], ids=["float64", "float32", "float16", "bfloat16"])
def test_accumulation_roundoff(fmt, expected):
    assert ACCUMULATION_ROUNDOFF == 2.0 ** -24
    assert accumulation_roundoff(fmt) == expected
    assert accumulation_roundoff(fmt) <= fmt.unit_roundoff


def test_format_constants_the_rule_uses():
    assert [f.unit_roundoff for f in (F64, F32, F16, BF16)] == [2.0 ** -53, 2.0 ** -24,
                                                              2.0 ** -11, 2.0 ** -8]
    assert [f.smallest_subnormal for f in (F64, F32, F16, BF16)] == [2.0 ** -1074, 2.0 ** -149,
                                                                   2.0 ** -24, 2.0 ** -133]
    # ulp: the spacing at |value| (subnormals: the smallest subnormal); inf for non-finite values
    assert F16.ulp(np.array([1.0, 0.5, 1.5, 65504.0, 2.0 ** -20, -3.0])).tolist() == \
        [2.0 ** -10, 2.0 ** -11, 2.0 ** -10, 32.0, 2.0 ** -24, 2.0 ** -9]
    assert BF16.ulp(np.array([3.0, 2.0 ** -130])).tolist() == [2.0 ** -6, 2.0 ** -133]
    assert F16.ulp(np.array([np.inf, np.nan])).tolist() == [np.inf, np.inf]


@pytest.mark.parametrize("fmt", [F64, F32, F16, BF16], ids=lambda f: f.name)
def test_ulp_at_zero_is_the_smallest_subnormal(fmt):
    assert fmt.ulp(np.array([0.0, -0.0])).tolist() == [fmt.smallest_subnormal] * 2


def test_exact_zero_with_zero_scale_rejects_a_visible_error():
    """A loss with all weights 0 (or a margin row with no labels) is exactly 0 with S = 0: the
    rule then allows (depth + 1) subnormals. 4.8e-4, a whole float16 ulp at 1/2, must fail."""
    result = compare(np.array([4.8e-4]), reference([0.0]), Magnitude(np.array([0.0]), 1, 10), F16)
    assert not result.passed


# --- allowed_error, by hand ----------------------------------------------------------------------

def test_allowed_error_float32_simple():
    # S = 2, depth 3, one term (no summation):
    #   3 * 2**-24 * 2  +  ulp32(1) = 2**-23  +  3 * 2**-149
    # = 6 * 2**-24 + 2 * 2**-24 + 3 * 2**-149 = 2**-21 + 3 * 2**-149
    bound = allowed_error(reference([1.0]), Magnitude(np.array([2.0]), 1, 3), F32)
    assert bound.tolist() == pytest.approx([2.0 ** -21 + 3 * 2.0 ** -149], rel=1e-15, abs=0)


def test_allowed_error_subnormal_floor():
    # exact 2**-140 (a float32 subnormal), S = 0, depth 4: only ulp32 = 2**-149 and
    # (4 + 0) * 2**-149 remain: 5 * 2**-149
    bound = allowed_error(reference([2.0 ** -140]), Magnitude(np.array([0.0]), 1, 4), F32)
    assert bound.tolist() == [5 * 2.0 ** -149]


def test_allowed_error_float16_with_float32_accumulation():
    # float16, S = 4, depth 10, 16 terms summed pairwise (15 units of u_acc = 2**-24):
    #   relative = 10 * 2**-11 + 15 * 2**-24
    #   relative * 4 = 40 * 2**-11 + 60 * 2**-24
    #   ulp16(0.5) = 2**-11
    #   subnormal term (10 + 15) * 2**-24 = 25 * 2**-24
    #   total = 41 * 2**-11 + 85 * 2**-24 = (41 * 8192 + 85) * 2**-24 = 335957 * 2**-24
    bound = allowed_error(reference([0.5]), Magnitude(np.array([4.0]), 16, 10), F16)
    assert bound.tolist() == [335957 * 2.0 ** -24]


def test_allowed_error_bfloat16_sequential_amplified_with_slack():
    # bfloat16, S = |-6| = 6, depth 2, 5 terms in a loop (4 units of 2**-24), amplification 8,
    # slack 1/4, exact -3:
    #   relative * 6 = (2 * 2**-8 + 4 * 2**-24) * 6 = 12 * 2**-8 + 24 * 2**-24
    #   ulp_bf16(3) = 2**-6 = 4 * 2**-8
    #   subnormal term (2 + 4) * 2**-133 * 8 = 48 * 2**-133
    #   total = 16 * 2**-8 + 1/4 + 24 * 2**-24 + 48 * 2**-133 = 0.3125 + 24 * 2**-24 + ...
    magnitude = Magnitude(np.array([-6.0]), 5, 2, slack=0.25, amplification=8.0,
                          summation="sequential")
    bound = allowed_error(reference([-3.0]), magnitude, BF16)
    assert bound.tolist() == pytest.approx([0.3125 + 24 * 2.0 ** -24 + 48 * 2.0 ** -133],
                                           rel=1e-15, abs=0)


@pytest.mark.parametrize("amplification, expected", [
    (8.0, 33),   # 2**-24 (ulp of a subnormal) + (2 + 2) * 2**-24 * 8
    (-8.0, 33),  # |amplification|
    (0.25, 5),   # clamped to 1: 2**-24 + 4 * 2**-24
    (1.0, 5),
])
def test_allowed_error_amplification(amplification, expected):
    # float16, exact 2**-20 (subnormal), S = 0, depth 2, 3 terms pairwise: summation_units(3) = 2
    magnitude = Magnitude(np.array([0.0]), 3, 2, amplification=amplification)
    assert allowed_error(reference([2.0 ** -20]), magnitude, F16).tolist() == \
        [expected * 2.0 ** -24]


def test_allowed_error_float64_accumulates_in_float64():
    # float64, S = 1, depth 1, 1024 terms pairwise (25 units of u_acc = 2**-53):
    #   (1 + 25) * 2**-53 + ulp64(1) = 2**-52 = 28 * 2**-53, plus 26 * 2**-1074
    bound = allowed_error(reference([1.0]), Magnitude(np.array([1.0]), 1024, 1), F64)
    assert bound.tolist() == pytest.approx([28 * 2.0 ** -53], rel=1e-15, abs=0)


def test_allowed_error_is_per_element():
    # float32, depth 1, one term: u S + ulp(rounded) + 2**-149
    #   [1: 2**-24 + 2**-23, -2 (S = 2): 2 * 2**-24 + 2**-22, 2**-140 (S = 0): 2**-149 + 2**-149]
    rounded = np.array([[1.0, -2.0, 2.0 ** -140]])
    bound = allowed_error(reference(rounded), Magnitude(np.array([[1.0, 2.0, 0.0]]), 1, 1), F32)
    assert bound.shape == (1, 3)
    assert bound[0].tolist() == pytest.approx(
        [3 * 2.0 ** -24, 6 * 2.0 ** -24, 2 * 2.0 ** -149], rel=1e-15, abs=0)


def test_allowed_error_non_finite_reference():
    bound = allowed_error(reference([np.inf, np.nan]), Magnitude(np.array([1.0, 1.0]), 1, 1), F32)
    assert bound.tolist() == [np.inf, np.inf]


# --- compare: the boundary -----------------------------------------------------------------------

def test_compare_passes_exactly_at_the_bound_and_fails_just_beyond():
    # float16, exact 1, S = 1, depth 2: 2 * 2**-11 + ulp16(1) = 2**-10 + 2 * 2**-24
    #   = 2**-9 + 2**-23, exactly representable, so the error of 1 + bound is exactly the bound.
    bound = 2.0 ** -9 + 2.0 ** -23
    magnitude = Magnitude(np.array([1.0]), 1, 2)
    assert allowed_error(reference([1.0]), magnitude, F16).tolist() == [bound]
    for at_bound, beyond in ((1 + bound, np.nextafter(1 + bound, 2)),
                             (1 - bound, np.nextafter(1 - bound, 0))):
        ok = compare(np.array([at_bound]), reference([1.0]), magnitude, F16)
        assert ok.passed and ok.problem == "" and ok.max_ratio == 1.0
        assert ok.worst_allowed == bound
        bad = compare(np.array([beyond]), reference([1.0]), magnitude, F16)
        assert not bad.passed and bad.max_ratio > 1.0
        assert bad.problem == "error exceeds the tolerance"


def test_compare_two_float16_ulps_with_a_one_ulp_slack():
    # depth 0, S = 0, slack 2**-10: allowed = ulp16(1) + 2**-10 = 2**-9, i.e. 2 ulps exactly.
    magnitude = Magnitude(np.array([1.0]), 1, 0, slack=2.0 ** -10)
    two_ulps = compare(np.array([1 + 2 * 2.0 ** -10]), reference([1.0]), magnitude, F16)
    assert two_ulps.passed and two_ulps.max_ulp == 2.0
    three_ulps = compare(np.array([1 + 3 * 2.0 ** -10]), reference([1.0]), magnitude, F16)
    assert not three_ulps.passed and three_ulps.max_ulp == 3.0


def test_compare_measures_from_the_exact_value_not_the_rounded_one():
    # exact 1 + 2**-11 (a float16 tie), rounded 1; allowed (depth 0) = ulp16(1) = 2**-10.
    # 1 + 3 * 2**-11 is 2**-10 from the exact value (passes) but 3 * 2**-11 from the rounded one.
    ref = reference([1.0], [LD(1) + LD(2.0 ** -11)])
    assert compare(np.array([1 + 3 * 2.0 ** -11]), ref, Magnitude(np.array([0.0]), 1, 0),
                   F16).passed
    assert not compare(np.array([1 - 2 * 2.0 ** -11]), ref, Magnitude(np.array([0.0]), 1, 0),
                       F16).passed


def test_compare_reports_the_worst_element():
    magnitude = Magnitude(np.zeros((2, 2)), 1, 0)
    candidate = np.array([[1.0, 2.0], [4.0 + 2.0 ** -7, 8.0]])  # 2 float16 ulps (2**-8) off
    result = compare(candidate, reference([[1.0, 2.0], [4.0, 8.0]]), magnitude, F16)
    assert not result.passed
    assert result.worst_index == (1, 0)
    assert (result.worst_candidate, result.worst_exact) == (4.0 + 2.0 ** -7, 4.0)
    assert result.max_ratio == 2.0


def test_compare_empty_output_passes():
    result = compare(np.zeros((0, 3)), reference(np.zeros((0, 3))),
                     Magnitude(np.zeros((0, 3)), 1, 1), F32)
    assert result.passed and result.worst_index is None


# --- compare: NaN and infinities -----------------------------------------------------------------

def _one(candidate, rounded, exact, fmt=F32, scale=0.0, depth=0, slack=0.0):
    return compare(np.array([candidate]), reference([rounded], [exact]),
                   Magnitude(np.array([scale]), 1, depth, slack=slack), fmt)


def test_nan_where_exact_is_nan_passes():
    assert _one(np.nan, np.nan, np.nan).passed


def test_finite_where_exact_is_nan_fails():
    result = _one(0.0, np.nan, np.nan)
    assert not result.passed and result.problem.startswith("expected nan")


@pytest.mark.filterwarnings("ignore:All-NaN slice encountered:RuntimeWarning")
def test_nan_where_exact_is_finite_fails():
    result = _one(np.nan, 1.0, 1.0, scale=1e30, depth=10)  # no tolerance admits a NaN
    assert not result.passed and result.problem == "got nan where the exact result is finite"


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_infinity_where_exact_overflows(sign):
    exact = sign * LD("1e40")  # beyond float32's 3.4e38: the correctly rounded result is inf
    assert _one(sign * np.inf, sign * np.inf, exact).passed
    wrong_sign = _one(-sign * np.inf, sign * np.inf, exact)
    assert not wrong_sign.passed and wrong_sign.problem.startswith("expected")
    finite = _one(sign * F32.max_finite, sign * np.inf, exact)
    assert not finite.passed


def test_infinity_where_exact_is_finite_and_far_from_the_range_fails():
    result = _one(np.inf, 1.0, 1.0, scale=1.0, depth=10)
    assert not result.passed and result.problem == "got inf where the exact result is finite"


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_infinity_tolerated_next_to_the_overflow_threshold(sign):
    # float16: largest finite 65504, ulp there 32, so the overflow threshold is 65504 + 16 = 65520.
    # exact 65504, depth 0, S = 0: allowed = ulp16(65504) = 32; 65504 + 32 >= 65520.
    result = _one(sign * np.inf, sign * 65504.0, sign * 65504.0, fmt=F16)
    assert result.passed and result.max_ratio == 1.0
    assert not _one(-sign * np.inf, sign * 65504.0, sign * 65504.0, fmt=F16).passed


@pytest.mark.parametrize("slack, tolerated", [
    (16.0, True),   # 65472 + 32 + 16 = 65520: reaches the threshold
    (15.5, False),  # 65472 + 32 + 15.5 = 65519.5: a value within tolerance still rounds to 65504
    (0.0, False),
])
def test_infinity_tolerance_edge(slack, tolerated):
    assert _one(np.inf, 65472.0, 65472.0, fmt=F16, slack=slack).passed == tolerated
    assert _one(65472.0 + 32 + slack, 65472.0, 65472.0, fmt=F16, slack=slack).passed


def test_infinity_tolerated_through_a_large_relative_bound():
    # exact 65000 (rounds to 65024), terms cancelling from S = 130000, depth 10:
    # 65000 + 10 * 2**-11 * 130000 + 32 = 65000 + 634.8 + 32 >= 65520
    assert _one(np.inf, 65024.0, 65000.0, fmt=F16, scale=130000.0, depth=10).passed
    # S = 65000: 65000 + 317.4 + 32 < 65520, so inf is wrong
    assert not _one(np.inf, 65024.0, 65000.0, fmt=F16, scale=65000.0, depth=10).passed


# --- the condition-aware point -------------------------------------------------------------------

X_NEAR_ONE = np.array([15.0, 20.0, 25.0, 30.0])  # sigmoid(x) within 3e-7 .. 1e-13 of y = 1


def _sigmoid_minus_y_reference(x, y):
    """sigmoid(x) - y in mpmath at 50 digits, correctly rounded to float64, with a long double
    estimate of the exact value."""
    rounded, exact = [], []
    with mp.workdps(50):
        for xi, yi in zip(x.tolist(), y.tolist()):
            value = 1 / (1 + mp.exp(-mp.mpf(xi))) - yi
            high = float(value)  # mpmath rounds to nearest
            rounded.append(high)
            exact.append(LD(high) + LD(float(value - high)))
    return reference(rounded, exact)


def test_condition_aware_bound_accepts_naive_float64_and_rejects_float32():
    """g = w = C = N' = 1. The exact gradient sigma(x) - y is ~1e-13..3e-7 while sigma(x) and y
    are ~1: numpy's naive float64 sigma(x) - y cancels, losing up to 1e-16 absolutely, i.e.
    ~1e8 ULPs of the result; the bound with S = sigma(x) + |y| (the terms' magnitudes) is
    10 * 2**-53 * 2 ~ 2.2e-15 and accepts it. In float32 sigma(x) rounds to 1 (x >= 17), so the
    gradient is 0, off by the whole result: rejected."""
    x, y = X_NEAR_ONE, np.ones(4)
    ref = _sigmoid_minus_y_reference(x, y)
    sigma = 1 / (1 + np.exp(-x))
    magnitude = Magnitude(sigma + np.abs(y), 1, 10)  # the spec's S for the input gradient

    naive64 = sigma - y
    assert (naive64 != ref.rounded).all()
    result = compare(naive64, ref, magnitude, F64)
    assert result.passed and result.max_ulp > 1e6

    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    naive32 = ((np.float32(1) / (np.float32(1) + np.exp(-x32))) - y32).astype(np.float64)
    result32 = compare(naive32, ref, magnitude, F64)
    assert not result32.passed and result32.problem == "error exceeds the tolerance"

    # Without the terms' magnitudes (S = |result|) the naive float64 value is rejected: the
    # condition-aware S is what makes it acceptable.
    unaware = Magnitude(np.abs(ref.rounded), 1, 10)
    assert not compare(naive64, ref, unaware, F64).passed

    # The stable form -sigma(-x) is accurate to a few ULPs and passes either way.
    stable = -1 / (1 + np.exp(x))
    assert compare(stable, ref, unaware, F64).passed
    assert compare(ref.rounded, ref, unaware, F64).passed


@settings(max_examples=400, deadline=None)
@example(value=2.0 ** -126, fmt=F32)  # the smallest normal: a power of two, yet both gaps equal
@example(value=2.0 ** -125, fmt=BF16)
@example(value=2.0 ** -14, fmt=F16)
@example(value=2.0 ** -1022, fmt=F64)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
                       st.integers(-1074, 1023).map(lambda e: 2.0 ** e)),
       fmt=st.sampled_from([F64, F32, F16, BF16]))
def test_ulp_and_the_narrower_gap_follow_their_definitions(value, fmt):
    """ulp from the float64 exponent field (formats.py) is 2**(floor(log2 |x|) - p + 1), at
    least the smallest subnormal, inf where x is not finite; the narrower gap is half of it
    at a power of two above the smallest normal. Written with Fractions here, apart from
    the bits: a wrong field mask or a missed subnormal changes the numbers."""
    from fractions import Fraction

    if not np.isfinite(value):
        expected_ulp = expected_gap = np.inf
    else:
        magnitude = Fraction(abs(value))
        floor_log2 = (magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
                      - (magnitude < Fraction(2) ** (magnitude.numerator.bit_length()
                                                     - magnitude.denominator.bit_length())))
        exponent = max(floor_log2, fmt.min_exponent) if magnitude else fmt.min_exponent
        expected_ulp = 2.0 ** (exponent - fmt.precision + 1)
        power_of_two = magnitude and magnitude == Fraction(2) ** floor_log2
        expected_gap = (expected_ulp / 2 if power_of_two
                        and magnitude > Fraction(2) ** fmt.min_exponent else expected_ulp)
    values = np.array([value, value, -value])[::2]  # a view, as callers pass
    spacing, narrower = fmt.gaps(values)
    assert spacing.tolist() == [expected_ulp] * 2
    assert narrower.tolist() == [expected_gap] * 2
    assert isinstance(fmt.ulp(np.array(value)), np.ndarray)
    assert fmt.ulp(np.array(value)).shape == ()
    assert all(isinstance(g, np.ndarray) for g in fmt.gaps(np.array(value)))
    assert float(fmt.ulp(np.array(value))) == expected_ulp


def _judged_by_blocks(monkeypatch, block, candidate, ref, magnitude, fmt):
    from conformance import accuracy

    monkeypatch.setattr(accuracy, "COMPARE_BLOCK", block)
    monkeypatch.setattr(accuracy, "RUN_BLOCKS", 3)  # several runs to merge
    return accuracy.compare(candidate, ref, magnitude, fmt)


@pytest.mark.parametrize("bad", ["none", "nan", "inf", "two", "all_nan"])
def test_blocks_judge_as_one_pass(monkeypatch, bad):
    """compare by blocks of 7 elements gives what one block of everything gives: the same
    verdict, worst element (the first of equal ratios), its
    figures, the largest ulps and relative error; per-element and scalar terms alike."""
    fmt = FORMATS["bfloat16"]
    rng = np.random.default_rng(7)
    exact = rng.normal(size=(9, 11)) * 2.0 ** rng.integers(-20, 20, (9, 11))
    exact[0, :3] = [0.0, np.inf, np.nan]
    rounded = round_float64(exact, fmt)
    candidate = rounded + np.where(np.isfinite(rounded), fmt.ulp(rounded), 0) * rng.uniform(
        -0.45, 0.45, exact.shape)
    candidate[0, :3] = [0.0, np.inf, np.nan]
    if bad == "nan":
        candidate[5, 4] = np.nan
    elif bad == "inf":
        candidate[3, 1] = -np.inf
    elif bad == "two":  # two elements with the same, largest ratio: the first is the worst
        candidate[2, 2], candidate[7, 9] = exact[2, 2] + 1e6, exact[7, 9] + 1e6
        exact[7, 9] = exact[2, 2]
        rounded[7, 9], candidate[7, 9] = rounded[2, 2], candidate[2, 2]
    elif bad == "all_nan":
        candidate[:] = np.nan
    ref = Evaluated(rounded, exact.astype(LD))
    magnitudes = [Magnitude(np.abs(exact) + 1.0, 16, 3),
                  Magnitude(np.float64(2.0), 4, 2, slack=np.full(exact.shape, 1e-3),
                            amplification=3.0)]
    for magnitude in magnitudes:
        whole = _judged_by_blocks(monkeypatch, 1 << 20, candidate, ref, magnitude, fmt)
        blocks = _judged_by_blocks(monkeypatch, 7, candidate, ref, magnitude, fmt)
        for field in ("passed", "problem", "max_ulp", "max_ratio", "max_rel", "worst_index",
                      "worst_candidate", "worst_exact", "worst_allowed"):
            assert np.array_equal(getattr(blocks, field), getattr(whole, field),
                                  equal_nan=field != "problem"), field
        assert whole.passed == (bad == "none")


def test_an_exact_value_beyond_float64_compares_without_a_warning():
    """An exact value beyond float64's range (a long double estimate of 1e400, which rounds
    to inf in every format) is compared as inf, silently: numpy's overflow warning on the
    cast had filled the users' pytest output with RuntimeWarnings."""
    exact = np.array([LD(10) ** 400, LD(1)], dtype=LD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        right = compare(np.array([np.inf, 1.0]), reference([np.inf, 1.0], exact),
                        Magnitude(np.array([1.0, 1.0]), 1, 1), F64)
        wrong = compare(np.array([1e308, 1.0]), reference([np.inf, 1.0], exact),
                        Magnitude(np.array([1.0, 1.0]), 1, 1), F64)
    assert right.passed and not wrong.passed


def test_a_failure_whose_exact_value_is_beyond_float64_is_reported_without_a_warning():
    """A float32 output whose exact value (1e400, a long double) exceeds float64's range: the
    verdict's evidence holds it as inf, and judging it raises no RuntimeWarning (numpy's
    overflow in a cast, which a suite run printed once per such check)."""
    from types import SimpleNamespace

    from conformance import checks

    reference = Evaluated(np.array([np.inf]), np.array([LD("1e400")]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verdict = checks._judge("value", np.array([1.0]), "float32", reference,
                                Magnitude(np.float64(1.0), 4, 2),
                                SimpleNamespace(dtype="float32"))
    assert not verdict.passed
    assert np.isposinf(verdict.evidence["value"]["exact"]).all()
