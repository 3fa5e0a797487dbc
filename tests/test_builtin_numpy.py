"""The built-in numpy candidate (conformance/builtin) against the reference on cases the
random draws reach rarely: it is one of the correct candidates the suite must pass."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conformance.builtin import (numpy_binary, numpy_classification, numpy_linear,
                                  numpy_losses, numpy_pointwise, numpy_probabilistic)
from conformance.cases import Case
from conformance.specs import SPECS
from loss_reference import binary as reference
from loss_reference.formats import FORMATS


def test_binary_cross_entropy_slopes_times_an_upstream_that_underflows_with_the_weight():
    """Soak quick seed 46: g = -5e-324 by w = 0.276 rounds to -0, so g w times the target's
    slope at p = 0 (+inf) was nan where the exact product is -inf; and times the input's
    slope of -1e12 at p = 1e-13, y = 1, it was 0 where the exact product is 1.4e-312."""
    p = np.array([0.0, 1.0, 1e-13])
    y = np.array([1.0, 0.0, 1.0])
    w = np.full(3, 0.27573296)
    g = np.full(3, -5e-324)
    got = numpy_binary.binary_cross_entropy_vjp(g, p, y, w, reduction="none")
    exact = reference.binary_cross_entropy_grad(g, p, y, w, "none", FORMATS["float64"])
    assert got["target"][:2].tolist() == [-math.inf, math.inf]
    assert got["target"][:2].tolist() == exact["target"].rounded[:2].tolist()
    assert got["input"][2] == exact["input"].rounded[2] > 1e-313


def test_binary_cross_entropy_with_logits_target_slope_times_an_underflowing_upstream():
    """The target's slope is about -x: at x = 1e30 with g w rounding to 0 the gradient was 0
    where the exact product is -1.4e-294; at x = inf it was nan where it is inf."""
    x = np.array([1e30, np.inf, -1e30])
    y = np.array([0.5, 0.0, 1.0])
    w = np.full(3, 0.27573296)
    g = np.full(3, -5e-324)
    got = numpy_binary.binary_cross_entropy_with_logits_vjp(g, x, y, w, reduction="none")
    exact = reference.binary_cross_entropy_with_logits_grad(g, x, y, w, None, "none",
                                                            FORMATS["float64"])
    np.testing.assert_array_equal(got["target"], exact["target"].rounded)
    assert abs(got["target"][0]) > 1e-295 and got["target"][1] == math.inf


def test_poisson_nll_loss_zero_upstream_times_an_infinite_slope_is_nan():
    """Soak quick seed 87: without log_input, x = -eps makes the slope 1 - y / (x + eps)
    infinite, and a zero upstream times it is nan, as the reference says; the candidate gave
    -0.0 (its rule for exp(x) overflowing, where the slope is finite, applies with log_input
    only)."""
    x, y, g = np.array([-1e-8, 800.0]), np.array([0.5, 0.5]), np.zeros(2)
    got = numpy_probabilistic.poisson_nll_loss_vjp(g[:1], x[:1], y[:1], log_input=False,
                                                   reduction="none")
    case = Case("float64", {"input": x[:1], "target": y[:1]},
                {"reduction": "none", "log_input": False, "full": True, "eps": 1e-8},
                grad_output=g[:1])
    exact = SPECS["poisson_nll_loss"].reference_grad(case)["input"].rounded
    assert np.isnan(exact[0]) and np.isnan(got["input"][0])
    # with log_input, exp(800) overflows float64 but is a number: 0 times it is 0
    got = numpy_probabilistic.poisson_nll_loss_vjp(g[1:], x[1:], y[1:], log_input=True,
                                                   reduction="none")
    assert got["input"].tolist() == [0.0]


def _reference_gradients(loss, args, options, grad_output):
    case = Case("float64", args, options, grad_output=np.asarray(grad_output))
    return {name: e.rounded for name, e in SPECS[loss].reference_grad(case).items()}


@pytest.mark.parametrize("loss", ["l1_loss", "mse_loss"])
def test_pointwise_weighted_mean_over_a_subnormal_sum_of_weights(loss):
    """Soak quick seeds 105 and 111: g / sum(w) overflowed for w = 5e-324, and its product
    with the weight and the slope was inf where the exact gradient is g sign(r) (l1) or
    2 g r (mse), finite."""
    x, y, w = np.array([-1e30]), np.array([30000.0]), np.array([5e-324])
    g = np.float64(-0.5641399530761051)
    got = getattr(numpy_pointwise, f"{loss}_vjp")(g, x, y, reduction="mean", weight=w)
    exact = _reference_gradients(loss, {"input": x, "target": y, "weight": w},
                                 {"reduction": "mean"}, g)
    assert np.isfinite(exact["input"]).all()
    np.testing.assert_allclose(got["input"], exact["input"], rtol=1e-15)


@pytest.mark.parametrize("loss", ["l1_loss", "mse_loss"])
def test_pointwise_weighted_mean_of_products_below_the_range(loss):
    """Soak quick seed 371: a single weight 5e-324 times the term 2422.29 rounds to 2422 times
    it, so the weighted mean was 2422 (the exact mean is the term) and the weight's gradient
    g (term - mean) / sum(w) was inf where it is exactly 0."""
    x, y, w = np.array([2479.4864426094487]), np.array([57.19350356208706]), np.array([5e-324])
    args, options, g = {"input": x, "target": y, "weight": w}, {"reduction": "mean"}, 2.7
    value = getattr(numpy_pointwise, loss)(x, y, reduction="mean", weight=w)
    case = Case("float64", args, options)
    np.testing.assert_allclose(value, SPECS[loss].reference(case).rounded, rtol=1e-15)
    got = getattr(numpy_pointwise, f"{loss}_vjp")(np.float64(g), x, y, reduction="mean",
                                                  weight=w)
    exact = _reference_gradients(loss, args, options, g)
    assert exact["weight"].tolist() == [0.0] and got["weight"].tolist() == [0.0]


def test_mse_gradient_of_a_residual_beyond_the_range():
    """x - y overflows float64 (2e308) where g 2 (x - y) / n does not."""
    x, y, g = np.array([1e308, 0.0]), np.array([-1e308, 0.0]), np.float64(1e-10)
    got = numpy_pointwise.mse_loss_vjp(g, x, y, reduction="sum")
    exact = _reference_gradients("mse_loss", {"input": x, "target": y}, {"reduction": "sum"}, g)
    assert np.isfinite(exact["input"]).all()
    np.testing.assert_allclose(got["input"], exact["input"], rtol=1e-15)


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_classification_weighted_mean_over_a_subnormal_sum_of_weights(loss):
    """The counted row's weight 5e-324 is the mean's divisor: g / divisor overflowed before
    its product with the weight, where the exact gradient is finite."""
    x = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -1.0]])
    t, w = np.array([1, 2]), np.array([0.25, 5e-324, 0.0])
    g = np.float64(0.75)
    args = {"input": x, "target": t, "weight": w}
    options = {"reduction": "mean", "ignore_index": -100}
    if loss == "cross_entropy":
        options["label_smoothing"] = 0.0
    got = getattr(numpy_classification, f"{loss}_vjp")(g, x, t, w, reduction="mean")
    exact = _reference_gradients(loss, args, options, g)
    assert np.isfinite(exact["input"]).all() and np.abs(exact["input"]).max() > 0.1
    np.testing.assert_allclose(got["input"], exact["input"], rtol=1e-14, atol=1e-300)


def test_linear_cross_entropy_products_of_a_gradient_beyond_the_range():
    """Soak quick seed 109: a subnormal sum of weights (2.2e-313) under 'mean' with label
    smoothing made G's entries inf of both signs, and G W nan, where the exact products lie
    beyond the range: -inf and inf, with finite entries beside them."""
    x = np.array([[-5.96262231, 7.90697072, 6.18987233, -1.1, 1e-05, 5.22181629]])
    W = np.array([[9.08382599e-312, -3.12142068, 0.816500663, 2.22081688, 8.06e-49, -4.8e-39],
                  [-1.01439549, -0.0409786841, 0.700724582, 2.05975624, 0.811167515,
                   -1.61467362],
                  [0.408244208, 1.96997926, -1.99e-220, 1.73957264, 9.08e-310, 2.50541076]])
    t, w = np.array([2]), np.array([0.180461482, -1.38856452e-298, 2.22507386e-313])
    g = np.float64(1.0)
    options = {"reduction": "mean", "ignore_index": None, "label_smoothing": 1.0}
    got = numpy_linear.linear_cross_entropy_vjp(g, x, W, t, weight=w, reduction="mean",
                                                label_smoothing=1.0)
    exact = _reference_gradients("linear_cross_entropy", {
        "input": x, "linear_weight": W, "target": t, "linear_bias": None, "weight": w},
        options, g)
    for name in ("input", "linear_weight"):
        assert not np.isnan(got[name]).any()
        assert np.isinf(exact[name]).any()
        np.testing.assert_allclose(got[name], exact[name], rtol=1e-12, atol=1e-300)


def test_multilabel_soft_margin_gradients_of_a_subnormal_upstream():
    """'none' takes an upstream per sample: g = 3.5e-323 divided by C = 3 first lost a third
    of its bits, and its products with an input of 1e300 and a weight of 1e300 were 14-38 %
    off the exact gradients (5e-24 and so on: normal numbers)."""
    x, y = np.array([[1e300, -2e299, 0.5]]), np.array([[0.0, 1.0, 1.0]])
    w, g = np.array([3.0, 0.7, 1e300]), np.array([7 * 5e-324])
    got = numpy_losses.multilabel_soft_margin_loss_vjp(g, x, y, w, reduction="none")
    exact = _reference_gradients("multilabel_soft_margin_loss",
                                 {"input": x, "target": y, "weight": w}, {"reduction": "none"}, g)
    assert np.abs(exact["target"]).min() > 1e-25
    for name in ("input", "target", "weight"):
        np.testing.assert_allclose(got[name], exact[name], rtol=1e-15, atol=0, err_msg=name)


def test_multilabel_margin_gradient_of_a_subnormal_upstream():
    """g / C of a subnormal g rounded before its product with a count of active pairs: the
    label's gradient 2 g / 3 was one subnormal step off."""
    x, t, g = np.array([[0.3, 0.1, 0.2]]), np.array([[2, 0, -1]]), np.array([7 * 5e-324])
    got = numpy_losses.multilabel_margin_loss_vjp(g, x, t, reduction="none")
    exact = _reference_gradients("multilabel_margin_loss", {"input": x, "target": t},
                                 {"reduction": "none"}, g)
    np.testing.assert_array_equal(got["input"], exact["input"])
