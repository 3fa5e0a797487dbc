"""The error-free products under the logits of linear_cross_entropy (``split_product``) and the
balls built on them: the exact product, in rational arithmetic, always lies within the bound."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from loss_reference.balls import FLOAT64_BALLS, LONG_DOUBLE_BALLS
from loss_reference.split_product import slice_bits, split_product


def _exact_product(a: np.ndarray, b: np.ndarray) -> list:
    return [[sum((Fraction(float(a[i, k])) * Fraction(float(b[k, j]))
                  for k in range(a.shape[1])), Fraction(0))
             for j in range(b.shape[1])] for i in range(a.shape[0])]


def _fraction(value) -> Fraction:
    return Fraction(*value.as_integer_ratio())


def _matrices(elements):
    def pair(shape):
        n, k, m = shape
        return st.tuples(arrays(np.float64, (n, k), elements=elements),
                         arrays(np.float64, (k, m), elements=elements))
    return st.tuples(st.integers(1, 4), st.integers(1, 70), st.integers(1, 4)).flatmap(pair)


FLOAT32 = st.floats(-1e4, 1e4, width=32)
# float32 numbers within 30 binades of each other (and zeros): what a layer's inputs look like
LAYER_FLOAT32 = st.one_of(st.just(0.0), st.floats(2.0 ** -16, 1e4, width=32),
                          st.floats(-1e4, -(2.0 ** -16), width=32))
# any exponent, so that entries far below their row's largest are left to the bound
WIDE = st.one_of(st.floats(-1e30, 1e30), st.floats(-1e-30, 1e-30), st.just(0.0))


@settings(max_examples=60, deadline=None)
@given(_matrices(LAYER_FLOAT32))
def test_float32_products_are_exact(operands):
    """Inputs within 30 binades fit in the slices: no bound, and the parts add up exactly."""
    a, b = operands
    parts, bound = split_product(a, b)
    total = [[sum(Fraction(float(p[i, j])) for p in parts) for j in range(b.shape[1])]
             for i in range(a.shape[0])]
    assert not bound.any() and total == _exact_product(a, b)


@settings(max_examples=80, deadline=None)
@given(_matrices(WIDE))
def test_the_bound_holds_for_any_exponents(operands):
    a, b = operands
    split = split_product(a, b)
    if split is None:
        return
    parts, bound = split
    exact = _exact_product(a, b)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            total = sum(Fraction(float(p[i, j])) for p in parts)
            assert abs(exact[i][j] - total) <= Fraction(float(bound[i, j]))


@pytest.mark.parametrize("backend", [FLOAT64_BALLS, LONG_DOUBLE_BALLS], ids=lambda b: b.name)
@settings(max_examples=40, deadline=None)
@given(operands=_matrices(st.one_of(FLOAT32, WIDE)))
def test_the_ball_of_an_exact_product_holds_it(backend, operands):
    a, b = operands
    ball = backend.matmul(a, b)
    exact = _exact_product(a, b)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            error = abs(exact[i][j] - _fraction(ball.mid[i, j]))
            assert error <= _fraction(ball.rad[i, j])


def test_slices_keep_every_sum_within_53_bits():
    for inner in (1, 2, 3, 128, 129, 1024, 4096, 65537):
        beta = slice_bits(inner)
        assert inner * 2 ** (2 * beta) <= 2 ** 53 < inner * 2 ** (2 * beta + 2)

