"""The built-in numpy candidate (conformance/builtin) against the reference on cases the
random draws reach rarely: it is one of the correct candidates the suite must pass."""

from __future__ import annotations

import math

import numpy as np

from conformance.builtin import numpy_binary, numpy_probabilistic
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
