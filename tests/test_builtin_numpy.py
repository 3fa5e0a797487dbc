"""The built-in numpy candidate (conformance/builtin) against the reference on cases the
random draws reach rarely: it is one of the correct candidates the suite must pass."""

from __future__ import annotations

import math

import numpy as np

from conformance.builtin import numpy_binary
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
