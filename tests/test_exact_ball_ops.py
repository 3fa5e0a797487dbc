"""Sums, products and quotients of exact balls: their radius is the exact rounding error
(TwoSum, TwoProduct) where it can be computed, so an exact result has radius 0 and a tie of the
target format is certified as its own rounding (ties to even) without the slow arb tier."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loss_reference import engine
from loss_reference.balls import FLOAT64_BALLS, LD, LONG_DOUBLE_BALLS
from loss_reference.formats import FORMATS
from loss_reference.pointwise import loss

BACKENDS = {"float64": FLOAT64_BALLS, "longdouble": LONG_DOUBLE_BALLS}
# every kind of float64: subnormals, the largest, zeros, infinities, nan
ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                      st.floats(-1e-300, 1e-300), st.sampled_from([0.0, -0.0, 1.0, 0.5, 3.0]))


def _fraction(value) -> Fraction:
    return Fraction(*value.as_integer_ratio())


def _operand(backend, value, low_bits):
    """An exact ball: in long double, value plus bits below float64's significand."""
    mid = np.asarray(value, backend.precision.dtype)
    if backend is LONG_DOUBLE_BALLS and np.isfinite(mid) and mid != 0:
        mid = mid + mid * LD(2.0 ** -60) * low_bits  # exact: fits 64 bits unless it underflows
        mid = np.asarray(mid, LD)
    return backend.asarray(mid)


def _assert_contains(ball, exact: Fraction):
    mid, rad = ball.mid.item(), ball.rad.item()
    if not (np.isfinite(mid) and np.isfinite(rad)):
        return  # a ball without finite bounds claims nothing (and certify() refuses it)
    assert abs(_fraction(mid) - exact) <= _fraction(rad)
    if rad == 0:
        assert _fraction(mid) == exact


OPERATIONS = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
}


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@settings(max_examples=300, deadline=None)
@given(x=ANY_FLOAT, y=ANY_FLOAT, low_x=st.integers(-7, 7), low_y=st.integers(-7, 7))
def test_exact_operands_give_the_exact_error_as_radius(backend_name, operation, x, y, low_x,
                                                       low_y):
    backend = BACKENDS[backend_name]
    on_balls, on_fractions = OPERATIONS[operation]
    a, b = _operand(backend, x, low_x), _operand(backend, y, low_y)
    result = on_balls(a, b)
    if np.isfinite(a.mid) and np.isfinite(b.mid):
        _assert_contains(result, on_fractions(_fraction(a.mid.item()), _fraction(b.mid.item())))


# Float32 values, whose products are exact in float64, and significands of up to 24 bits or of
# 25 to 30 bits, in float32's exponent range or anywhere: products that are inexact, underflow
# or overflow.
SHORT_FLOAT = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.builds(lambda m, e: math.ldexp(m, e),
              st.one_of(st.integers(-2**24, 2**24), st.integers(2**24, 2**30),
                        st.integers(-2**30, -2**24)),
              st.one_of(st.integers(-180, 100), st.integers(-1100, 990))))


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@settings(max_examples=500, deadline=None)
@given(x=SHORT_FLOAT, y=SHORT_FLOAT)
def test_a_product_of_two_float32_values_is_exact(backend_name, x, y):
    """Two float32 inputs multiply exactly in float64 (48 significant bits, no underflow): the
    ball says so with radius 0 (without TwoProduct); other short significands hold the error."""
    backend = BACKENDS[backend_name]
    a, b = backend.asarray(np.asarray(x)), backend.asarray(np.asarray(y))
    result = a * b
    if not (np.isfinite(x) and np.isfinite(y)):
        return
    _assert_contains(result, _fraction(a.mid.item()) * _fraction(b.mid.item()))
    float32_max = float(np.finfo(np.float32).max)
    if all(abs(v) <= float32_max and float(np.float32(v)) == v for v in (x, y)):
        assert result.rad.item() == 0


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@settings(max_examples=300, deadline=None)
@given(x=ANY_FLOAT, divisor=st.one_of(ANY_FLOAT.filter(lambda d: d != 0 and np.isfinite(d)),
                                      st.sampled_from([2.0, 0.5, 3.0, 1.0, -4.0, 10.0])))
def test_a_quotient_by_an_exact_number_is_exact_only_when_it_is(backend_name, x, divisor):
    backend = BACKENDS[backend_name]
    a = _operand(backend, x, 0)
    result = a / divisor
    if np.isfinite(a.mid):
        _assert_contains(result, _fraction(a.mid.item()) / Fraction(divisor))


def test_an_exact_float32_difference_is_a_tie_rounded_to_even_in_the_fast_tier():
    """1 + 2^-23 minus 2^-24 is exactly halfway between the float32 numbers 1 and 1 + 2^-23:
    the reference rounds it to even (1) from float64 balls, without arb."""
    x = np.array([1 + 2.0 ** -23, 1 + 2.0 ** -22], np.float64)
    y = np.array([2.0 ** -24, 2.0 ** -24], np.float64)
    engine.STATS.clear()
    result = loss("l1_loss", x, y, None, {}, "none", FORMATS["float32"])
    # the second: 1 + 2^-22 - 2^-24 lies halfway between 1 + 2^-23 and 1 + 2 * 2^-23 (even)
    assert result.rounded.tolist() == [1.0, 1 + 2.0 ** -22]
    assert dict(engine.STATS) == {"float64": 2}


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@settings(max_examples=200, deadline=None)
@given(mask=st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0]), min_size=1, max_size=6),
       x=ANY_FLOAT)
def test_a_product_with_a_mask_of_zeros_and_ones_is_exact_where_the_other_is_finite(
        backend_name, mask, x):
    """A 0/1 mask times exact values is exact (radius 0) when the values are finite; where one
    is infinite or nan (0 * inf is nan) the product claims nothing exact."""
    backend = BACKENDS[backend_name]
    result = backend.asarray(np.array(mask)) * backend.asarray(np.full(len(mask), x))
    if np.isfinite(x):
        assert not np.any(result.rad)
        assert [_fraction(m) for m in result.mid.tolist()] == [
            _fraction(m) * _fraction(x) for m in mask]
    else:
        assert np.all(result.rad != 0)


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@settings(max_examples=200, deadline=None)
@given(factor=st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0]), min_size=1, max_size=6),
       mid=st.floats(-1e300, 1e300), rad=st.sampled_from([0.0, 2.0 ** -60, 1e-20, 0.5]))
def test_a_ball_times_zeros_and_ones_keeps_its_radius_without_a_rounding(backend_name, factor,
                                                                         mid, rad):
    """A ball times an exact factor of 0 and +-1 (a mask, a weight of ones) is the ball scaled:
    its radius |c| rad holds c times every point of the ball, and an exact element (radius 0)
    stays exact, so a tie of the format can still be certified as its own rounding."""
    backend = BACKENDS[backend_name]
    dtype = backend.precision.dtype
    ball = backend.asarray(np.full(len(factor), mid, dtype))
    ball.rad = np.array([rad] + [0.0] * (len(factor) - 1), dtype)  # the first inexact
    result = backend.asarray(np.array(factor, dtype)) * ball
    for c, m, r, out_mid, out_rad in zip(factor, ball.mid, ball.rad, result.mid, result.rad):
        assert out_rad == abs(c) * r
        for point in (_fraction(m) - _fraction(r), _fraction(m) + _fraction(r)):
            assert abs(_fraction(out_mid) - _fraction(c) * point) <= _fraction(out_rad)


def test_a_tie_beside_an_inexact_element_is_still_certified_by_the_fast_tier():
    """huber_loss 'none' (its terms times a weight of ones): (2 + 2^-22 - 2^-24) - 0.5 is
    exactly halfway between two float32 numbers and rounds to even (1.5 + 2^-22); beside it a
    quadratic term whose square float64 rounds. The ones must not add a rounding to the tie."""
    x = np.array([2 + 2.0 ** -22, 0.5 + 2.0 ** -24], np.float64)
    y = np.array([2.0 ** -24, 3 * 2.0 ** -30], np.float64)
    engine.STATS.clear()
    result = loss("huber_loss", x, y, None, {}, "none", FORMATS["float32"])
    assert result.rounded[0] == 1.5 + 2.0 ** -22
    assert dict(engine.STATS) == {"float64": 2}


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
@settings(max_examples=200, deadline=None)
@given(x=st.lists(ANY_FLOAT, min_size=2, max_size=5), y=ANY_FLOAT,
       rad=st.sampled_from([2.0 ** -60, 1e-20, 0.5]))
def test_an_exact_addend_and_a_ball_exact_in_places_add_exactly_there(backend_name, x, y,
                                                                      rad):
    """An exact number plus a ball whose first element is inexact and whose others are exact:
    every result holds the exact sum of its points (within the radius's own rounding, which
    ``engine.certify`` widens by 1e-4), and where both addends are exact the radius is the
    sum's own rounding error, exactly (0 where the sum is exact)."""
    backend = BACKENDS[backend_name]
    dtype = backend.precision.dtype
    ball = backend.asarray(np.array(x, dtype))
    ball.rad = np.array([rad] + [0.0] * (len(x) - 1), dtype)
    for result in (ball + y, backend.asarray(np.array(y, dtype)) - (-ball)):
        for i, (m, r) in enumerate(zip(ball.mid, ball.rad)):
            out_mid, out_rad = result.mid[i], result.rad[i]
            if not (np.isfinite(m) and np.isfinite(y) and np.isfinite(out_mid)):
                continue  # a ball without finite bounds claims nothing
            if not np.isfinite(out_rad):
                continue
            widened = _fraction(out_rad) * Fraction(10001, 10000)  # as engine.certify does
            for point in (_fraction(m) - _fraction(r), _fraction(m) + _fraction(r)):
                exact = point + _fraction(dtype(y))
                assert abs(_fraction(out_mid) - exact) <= widened
            if i and np.isfinite(out_mid):
                assert _fraction(out_rad) == abs(_fraction(m) + _fraction(dtype(y))
                                                 - _fraction(out_mid))


def test_a_margin_added_to_a_partly_exact_difference_keeps_its_ties():
    """margin_ranking_loss-like terms: -(x1 - x2) + 0.5, where one difference is inexact in
    float64 and the others exact: the exact elements' sums stay exact (radius 0)."""
    x1 = np.array([1.0 + 2.0 ** -52, 3.0, 1e300])
    x2 = np.array([2.0 ** -60, 1.0 + 2.0 ** -52, -1e-300])
    a, b = FLOAT64_BALLS.asarray(x1), FLOAT64_BALLS.asarray(x2)
    terms = -(a - b) + 0.5
    assert terms.rad[1] == 0 and terms.mid[1] == -1.5 + 2.0 ** -52
    assert terms.rad[0] > 0
