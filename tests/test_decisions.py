"""``loss_reference.decisions``: ``sign_of_sum``, the exact sign of a sum of float64 arrays,
broadcast together, against rational arithmetic, infinities and nans by IEEE's rules; and
``float_sum``, the correctly rounded sum that never raises."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from loss_reference.decisions import float_sum, sign_of_sum

# values that cancel: near 1, at the ends of float64's range, subnormal, and special
VALUES = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                   st.floats(-2.0, 2.0), st.sampled_from([1.0, -1.0, 2.0 ** -53, -2.0 ** -1074,
                                                          1e308, -1e308, 0.0]),
                   st.sampled_from([math.inf, -math.inf, math.nan]))
SHAPES = [((3, 1), (1, 4), ()), ((2, 1, 1), (2, 3, 1), (1, 1, 2)), ((5,),), ((4,), (4,))]


def _expected(values) -> float:
    if any(math.isnan(v) for v in values):
        return math.nan
    infinite = [v for v in values if math.isinf(v)]
    if infinite:
        return math.nan if (math.inf in infinite and -math.inf in infinite) else math.copysign(
            1.0, infinite[0])
    total = sum((Fraction(v) for v in values), Fraction(0))
    return float((total > 0) - (total < 0))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), shapes=st.sampled_from(SHAPES))
def test_the_sign_is_exact_everywhere(data, shapes):
    terms = [np.array(data.draw(st.lists(VALUES, min_size=int(np.prod(s, dtype=int)),
                                         max_size=int(np.prod(s, dtype=int)))),
                      dtype=np.float64).reshape(s) for s in shapes]
    got = sign_of_sum(*terms)
    shape = np.broadcast_shapes(*shapes)
    assert got.shape == shape
    wide = [np.broadcast_to(t, shape) for t in terms]
    for index in np.ndindex(shape):
        expected = _expected([float(t[index]) for t in wide])
        value = float(got[index])
        assert (math.isnan(expected) and math.isnan(value)) or value == expected, (index,)


def test_a_sum_within_its_rounding_of_zero_is_decided_exactly():
    """1 + 2^-53 - 1 is 0 in float64 arithmetic and 2^-53 exactly: positive."""
    assert sign_of_sum(np.array([1.0]), np.array([2.0 ** -53]), np.array([-1.0]))[0] == 1.0
    assert sign_of_sum(np.array([1e308]), np.array([1e308]), np.array([-1e308]),
                       np.array([-1e308]))[0] == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(VALUES, max_size=8))
def test_float_sum_is_the_correctly_rounded_sum_and_never_raises(values):
    """Where fsum raises (partial sums beyond float64, +inf beside -inf): the exact sum
    rounded, +-inf beyond the range, nan for opposite infinities; fsum's result elsewhere."""
    got = float_sum(np.array(values))
    if any(math.isnan(v) for v in values) or {math.inf, -math.inf} <= set(values):
        assert math.isnan(got)
        return
    infinite = [v for v in values if math.isinf(v)]
    if infinite:
        assert got == infinite[0]
        return
    exact = sum((Fraction(v) for v in values), Fraction(0))
    try:
        want = float(exact)
    except OverflowError:
        want = math.inf if exact > 0 else -math.inf
    assert got == want


def test_float_sum_of_weights_whose_partial_sums_overflow():
    assert float_sum(np.array([1e308, 1e308, -1e308])) == 1e308
    assert float_sum(np.array([1e308] * 7)) == math.inf
    assert float_sum(np.array([math.inf, 1.0])) == math.inf
