"""The bounds of linear_cross_entropy's gradient products (loss_reference/softmax_products.py).

A product of G_hi by an operand errs by at most (gamma + u + eps) times the product of their
magnitudes, so each radius must be at least that factor times the exact sum of |G_hi| |.|,
the target's entry included: these tests check that inequality in exact rationals, element
by element, for the norms' bounds and the sharp ones, on softmax gradients whose targets hold
nearly all of a row's magnitude (peaked logits) or almost none of it (flat ones), with tiny
and ignored rows. The end-to-end tests (test_reference_linear_fast) check that the balls hold
the exact gradients; real products err far inside their bounds, so only this direct check
catches a bound that drops a term.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from test_reference import to_format

from loss_reference import linear
from loss_reference import linear_float64 as double_double_tier
from loss_reference.formats import FORMATS
from loss_reference.softmax_products import U
from loss_reference.split_product import blocked_gamma
from loss_reference.split_product import gamma as blas_gamma

IGNORE = -100


def _kept(spread: float, seed: int):
    """A small float32 call and its first tier's kept softmax gradient (``blas_gradients``):
    logits of about ``spread``, one token ignored, one whose upstream factor is tiny."""
    rng = np.random.default_rng(seed)
    fmt = FORMATS["float32"]
    M, C, D = 7, 6, 3
    x = to_format(rng.normal(size=(M, D)) * spread, fmt)
    W = to_format(rng.normal(size=(C, D)), fmt)
    target = rng.integers(0, C, size=M)
    target[2] = IGNORE
    g = to_format(rng.normal(size=M), fmt)
    g[4] = 2.0 ** -120
    call = linear.Call(x, W, target, None, None, IGNORE)
    call.grad_output = g
    first = double_double_tier.blas_gradients(call, "none")
    assert first is not None
    return call, first


def _exact_magnitudes(left: np.ndarray, right: np.ndarray, weights=None) -> list:
    """sum_j weights_j |left_ij| |right_jk| as Fractions, (n, m) (weights 1 by default)."""
    weights = [Fraction(1)] * left.shape[1] if weights is None else weights
    return [[sum((weights[j] * abs(Fraction(float(left[i, j])))
                  * abs(Fraction(float(right[j, k]))) for j in range(left.shape[1])),
                 Fraction(0))
             for k in range(right.shape[1])] for i in range(left.shape[0])]


def _assert_covers(ball, factors, magnitudes, name):
    """ball.rad[i, k] >= factors[i] * magnitudes[i][k], exactly (inf covers anything)."""
    rad = np.broadcast_to(ball.rad, ball.mid.shape)
    for i, row in enumerate(magnitudes):
        for k, magnitude in enumerate(row):
            if rad[i, k] != np.inf:
                assert Fraction(float(rad[i, k])) >= factors[i] * magnitude, (name, i, k)


@pytest.mark.parametrize("spread", [0.1, 3.0, 30.0])
@pytest.mark.parametrize("seed", range(3))
def test_every_bound_covers_its_product_of_magnitudes(spread, seed):
    """The input's gradient per token (gamma of the blocked product), the layer's per class
    (gamma of a sum over the tokens), by norms and sharp, every element."""
    call, (_, _, kept) = _kept(spread, seed)
    products = kept.products
    G, M, C = kept.hi, call.row_count, call.classes
    x_one = np.concatenate([call.x, np.ones((M, 1))], axis=1)
    to_input = _exact_magnitudes(G, call.W_rows)
    input_factors = [Fraction(blocked_gamma(C)) + Fraction(U) + Fraction(float(e))
                     for e in kept.eps]
    # each token's G_hi within (u + eps_i) of its own, the sum over the tokens gamma(M)
    token_factors = [Fraction(blas_gamma(M)) + Fraction(U) + Fraction(float(e))
                     for e in kept.eps]
    to_layer = _exact_magnitudes(G.T, x_one, token_factors)
    layer_factors = [Fraction(1)] * C
    every_token, every_class = np.arange(M), np.arange(C)
    _assert_covers(products.input_by_norms(slice(None)), input_factors, to_input, "input norms")
    _assert_covers(products.layer_by_norms(slice(None)), layer_factors, to_layer, "layer norms")
    sharp_input, sharp_layer = products.sharp(every_token, every_class)
    _assert_covers(sharp_input, input_factors, to_input, "input sharp")
    _assert_covers(sharp_layer, layer_factors, to_layer, "layer sharp")


def test_the_norms_bound_a_peaked_softmax_by_its_target_entry():
    """Where the target holds nearly all of a row's magnitude, the norms' bound is within a
    small factor of the sharp one: the target's entry is added exactly, not through a norm."""
    call, (_, _, kept) = _kept(30.0, 0)
    products = kept.products
    every_token = np.arange(call.row_count)
    by_norms = products.input_by_norms(slice(None)).rad
    sharp = products.sharp(every_token, np.arange(0))[0].rad
    counted = np.abs(kept.hi).sum(axis=1) > 0
    assert (by_norms[counted] <= 4 * sharp[counted]).all()
