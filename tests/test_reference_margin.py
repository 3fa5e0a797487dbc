"""The margin references (loss_reference/margin.py), proved against exact rational arithmetic.

margin_ranking_loss, hinge_embedding_loss and multi_margin_loss are piecewise rational in their
inputs and margin, so the oracle computes them with ``fractions.Fraction``, exactly (stronger
than any fixed mpmath precision), branch by branch from the definitions, with torch 2.13's
conventions at the kinks. Each expectation is rounded to the format by test_reference's
``correctly_round`` and must equal the certified reference, whose long double estimate must lie
within 2**-50 of the truth, on every regime, reduction and format.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from test_reference import assert_certified, to_format

from loss_reference import margin as mg
from loss_reference.formats import FORMATS
from conformance.specs import REDUCTIONS

FORMAT_NAMES = tuple(FORMATS)
G_VECTOR = [0.75, -2.5, 1.25, -0.375, 2.0, 0.5, -1.0, 3.0]
G_SCALAR = -2.5


def _fr(values):
    return [Fraction(float(v)) for v in np.asarray(values, np.float64).reshape(-1)]


def _reduce(terms, shape, reduction):
    if reduction == "none":
        return terms, shape
    total = sum(terms, Fraction(0))
    if reduction == "sum":
        return [total], ()
    return [total / len(terms) if terms else math.nan], ()


def _upstream(shape, reduction, fmt):
    if reduction != "none":
        return to_format(G_SCALAR, fmt)
    return to_format(np.resize(G_VECTOR, shape) if shape else G_VECTOR[0], fmt)


# --- the oracles ---------------------------------------------------------------------------------

def ranking_exact(x1, x2, y, m, reduction):
    """max(0, m - y (x1 - x2)) per broadcast element, reduced."""
    x1, x2, y = np.broadcast_arrays(x1, x2, y)
    terms = [max(Fraction(0), Fraction(m) - c * (a - b))
             for a, b, c in zip(_fr(x1), _fr(x2), _fr(y))]
    return _reduce(terms, x1.shape, reduction)


def ranking_grad_exact(g, x1, x2, y, m, reduction):
    """d/dx1 = -y, d/dx2 = y, d/dy = -(x1 - x2) where m - y (x1 - x2) >= 0 (torch's
    clamp_min), times g / N', summed over broadcast axes."""
    shapes = [np.shape(a) for a in (x1, x2, y)]
    b1, b2, by = np.broadcast_arrays(x1, x2, y)
    n = max(b1.size, 1) if reduction == "mean" else 1
    gs = _fr(np.broadcast_to(g, b1.shape))
    full = {"input1": [], "input2": [], "target": []}
    for a, b, c, gi in zip(_fr(b1), _fr(b2), _fr(by), gs):
        on = Fraction(m) - c * (a - b) >= 0
        full["input1"].append(-c * gi / n if on else Fraction(0))
        full["input2"].append(c * gi / n if on else Fraction(0))
        full["target"].append(-(a - b) * gi / n if on else Fraction(0))
    out = {}
    for name, shape in zip(full, shapes):
        values = np.empty(b1.shape, dtype=object)
        values.reshape(-1)[:] = full[name]
        for axis, k in enumerate(shape):
            if k == 1 and b1.shape[axis] != 1:
                values = np.sum(values, axis=axis, keepdims=True)
        out[name] = (list(values.reshape(-1)), shape)
    return out


def hinge_exact(x, y, m, reduction):
    """[y != -1] x + [y != 1] max(0, m - x), reduced."""
    terms = [(a if c != -1 else 0) + (max(Fraction(0), Fraction(m) - a) if c != 1 else 0)
             for a, c in zip(_fr(x), _fr(y))]
    return _reduce(terms, np.shape(x), reduction)


def hinge_grad_exact(g, x, y, m, reduction):
    n = max(np.size(x), 1) if reduction == "mean" else 1
    values = [gi * ((c != -1) - (c != 1 and Fraction(m) - a >= 0)) / n
              for a, c, gi in zip(_fr(x), _fr(y), _fr(np.broadcast_to(g, np.shape(x))))]
    return {"input": (values, np.shape(x))}


def _rows(x, t):
    x = np.atleast_2d(x)
    return [_fr(row) for row in x], [int(v) for v in np.reshape(t, -1)]


def multi_exact(x, t, p, m, w, reduction):
    """Per sample sum_{i != y} w[y] max(0, m - x[y] + x[i])^p / C, reduced over samples."""
    rows, labels = _rows(x, t)
    classes = np.shape(x)[-1]
    ws = [Fraction(1)] * classes if w is None else _fr(w)
    per = []
    for row, y in zip(rows, labels):
        hinges = [max(Fraction(0), Fraction(m) - row[y] + v) for i, v in enumerate(row)
                  if i != y]
        per.append(sum((ws[y] * h ** p for h in hinges), Fraction(0)) / classes)
    return _reduce(per, np.shape(t), reduction)


def multi_grad_exact(g, x, t, p, m, w, reduction):
    """d/dx[i] = g w[y] (1 or 2 z) / (C N') where z = m - x[y] + x[i] > 0 (torch: strict),
    d/dx[y] = minus the sum of the others."""
    rows, labels = _rows(x, t)
    classes = np.shape(x)[-1]
    ws = [Fraction(1)] * classes if w is None else _fr(w)
    scale = classes * (max(len(rows), 1) if reduction == "mean" else 1)
    gs = _fr(np.broadcast_to(g, (len(rows),))) if rows else []
    values = []
    for row, y, gi in zip(rows, labels, gs):
        out = [Fraction(0)] * classes
        for i, v in enumerate(row):
            z = Fraction(m) - row[y] + v
            if i != y and z > 0:
                out[i] = gi * ws[y] * (1 if p == 1 else 2 * z) / scale
        out[y] = -sum(out, Fraction(0))
        values += out
    return {"input": (values, np.shape(x))}


# --- the regimes ---------------------------------------------------------------------------------

def ranking_regime(name, fmt):
    """(x1, x2, y, margin), representable in fmt (the margin need not be)."""
    p, sub = fmt.precision, fmt.smallest_subnormal
    m = 0.5
    if name == "normal":
        x1, x2, y = [1.25, -3.5, 4.75, -1.0625, 0.0], [0.5, -3.0, 1.0, 2.0, 0.25], [1, -1, 1, -1, 1]
    elif name == "kinks":  # x1 - x2 = m exactly, one spacing either side, y = -1 mirror
        d = [1.0, 1 - 2.0 ** -p, 1 + 2.0 ** (1 - p), -1.0, -(1 - 2.0 ** -p), 0.0]
        x1, x2, y, m = d, [0.0] * 6, [1, 1, 1, -1, -1, 1], 1.0
    elif name == "real-targets":
        x1, x2, y = [1.25, -3.5, 4.75, 2.0], [0.5, -3.0, 1.0, 2.0], [0.5, -1.75, 0.0, 2.0]
    elif name == "large":
        x1, x2, y = [1e30, -3e4, 255.5], [-1e30, 3e4, 0.0], [-1, 1, -1]
        x1, x2 = np.clip(x1, -fmt.max_finite, fmt.max_finite), np.clip(x2, -fmt.max_finite,
                                                                       fmt.max_finite)
    elif name == "overflow":  # float16: x1 - x2 = 9e4 leaves the range, the mean does not
        x1, x2, y = [6e4, 0.0, 0.0, 0.0], [-3e4, 0.0, 0.0, 0.0], [-1, 1, 1, 1]
    elif name == "tiny":
        x1, x2, y, m = [1e-8, -3e-8, 2.5e-9], [0.0, 1e-8, -1e-8], [1, -1, 1], 0.0
    elif name == "subnormal":
        x1, x2, y, m = [sub, 0.0, 3 * sub], [0.0, sub, 0.0], [-1, -1, 0.5], 0.0
    elif name == "inexact-margin":  # 0.1: no format holds it
        x1, x2, y, m = [0.1, 0.0, 1.0], [0.0, 0.1, 0.9], [1, -1, 1], 0.1
    elif name == "negative-margin":
        x1, x2, y, m = [1.0, -0.5, 0.25], [1.5, 0.5, 0.25], [1, -1, 1], -0.75
    elif name == "broadcast":
        x1, x2 = [[1.0, -0.5, 2.0], [0.25, 3.0, -1.0]], [[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]
        y = [[1.0], [-1.0]]
    elif name == "empty":
        x1 = x2 = y = np.zeros(0)
    elif name == "scalar":
        x1, x2, y = 0.75, 1.5, 1.0
    else:
        raise AssertionError(name)
    return to_format(x1, fmt), to_format(x2, fmt), to_format(y, fmt), m


RANKING = ("normal", "kinks", "real-targets", "large", "overflow", "tiny", "subnormal",
           "inexact-margin", "negative-margin", "broadcast", "empty", "scalar")


def hinge_regime(name, fmt):
    p, sub = fmt.precision, fmt.smallest_subnormal
    m = 1.0
    if name == "normal":
        x, y = [[0.5, 2.0, -1.5], [3.25, -0.75, 1.0]], [[1, -1, -1], [1, 1, -1]]
    elif name == "kinks":
        x, y = [1.0, 1 - 2.0 ** -p, 1 + 2.0 ** (1 - p), 1.0], [-1, -1, -1, 0]
    elif name == "other-targets":
        x, y = [0.5, -1.0, 2.0, 0.25, 3.0], [0.0, 2.0, 0.5, -2.0, 1.5]
    elif name == "overflow":  # float16: m - x = 65604 leaves the range
        x, y, m = [-65504.0, 0.0, -65504.0], [-1, 1, 0], 100.0
    elif name == "subnormal":
        x, y, m = [sub, -sub, 0.0, 2 * sub], [1, -1, -1, 0], 0.0
    elif name == "inexact-margin":
        x, y, m = [0.1, 0.0, 0.25], [-1, -1, 2], 0.1
    elif name == "negative-margin":
        x, y, m = [-0.25, -1.0, 0.5], [-1, -1, 1], -0.5
    elif name == "empty":
        x, y = np.zeros((2, 0)), np.zeros((2, 0))
    elif name == "scalar":
        x, y = 0.25, -1.0
    else:
        raise AssertionError(name)
    return to_format(x, fmt), to_format(y, fmt), m


HINGE = ("normal", "kinks", "other-targets", "overflow", "subnormal", "inexact-margin",
         "negative-margin", "empty", "scalar")


def multi_regime(name, fmt):
    """(x, target, p, margin, weight or None)."""
    normal = [[0.5, -1.25, 2.0, 0.75], [3.0, 1.5, -0.5, 2.75], [-2.0, 0.25, 0.125, -1.5]]
    if name == "normal-p1":
        x, t, p, m, w = normal, [2, 0, 1], 1, 1.0, None
    elif name == "normal-p2":
        x, t, p, m, w = normal, [2, 0, 1], 2, 1.0, None
    elif name == "weighted-p2":
        x, t, p, m, w = normal, [3, 0, 1], 2, 0.5, [0.5, 2.0, -1.0, 3.0]
    elif name == "kinks":  # 1 - x[y] + x[i] = 0 exactly: inactive (torch: z > 0)
        x, t, p, m, w = [[1.0, 0.0, 0.5, -3.0], [2.0, 1.0, 1.0, 1.5]], [0, 0], 1, 1.0, None
    elif name == "ties":
        x, t, p, m, w = [[0.75] * 5] * 2, [0, 4], 2, 1.0, None
    elif name == "one-class":
        x, t, p, m, w = [[0.5], [-2.0]], [0, 0], 1, 1.0, None
    elif name == "unbatched":
        x, t, p, m, w = [0.5, -1.0, 2.0], 2, 1, 1.0, None
    elif name == "unbatched-target-1":
        x, t, p, m, w = [0.5, -1.0, 2.0], [0], 2, 1.0, [1.0, 2.0, 0.5]
    elif name == "large":
        x, t, p, m, w = [[1e4, -1e4, 3e4, 0.0], [-3e4, 1e4, 0.0, 2.0]], [1, 0], 2, 1.0, None
    elif name == "inexact-margin":
        x, t, p, m, w = [[0.1, 0.0, 0.2], [1.0, 0.9, 0.0]], [0, 0], 1, 0.1, None
    elif name == "empty":
        x, t, p, m, w = np.zeros((0, 3)), np.zeros(0, np.int64), 1, 1.0, None
    else:
        raise AssertionError(name)
    return (to_format(x, fmt), np.asarray(t, np.int64), p, m,
            None if w is None else to_format(w, fmt))


MULTI = ("normal-p1", "normal-p2", "weighted-p2", "kinks", "ties", "one-class", "unbatched",
         "unbatched-target-1", "large", "inexact-margin", "empty")


def _grid(regimes):
    return [pytest.param(r, red, f, id=f"{r}-{red}-{f}")
            for r, red, f in itertools.product(regimes, REDUCTIONS, FORMAT_NAMES)]


# --- the comparisons -----------------------------------------------------------------------------

@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(RANKING))
def test_margin_ranking_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x1, x2, y, m = ranking_regime(regime, fmt)
    result = mg.margin_ranking_loss(x1, x2, y, m, reduction, fmt)
    assert_certified(result, *ranking_exact(x1, x2, y, m, reduction), fmt)
    if regime == "overflow" and fmt_name == "float16":
        assert (result.rounded == np.inf).any() == (reduction != "mean")


@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(RANKING))
def test_margin_ranking_loss_grad(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x1, x2, y, m = ranking_regime(regime, fmt)
    g = _upstream(np.broadcast_shapes(x1.shape, x2.shape, y.shape), reduction, fmt)
    grads = mg.margin_ranking_loss_grad(g, x1, x2, y, m, reduction, fmt)
    expected = ranking_grad_exact(g, x1, x2, y, m, reduction)
    assert set(grads) == set(expected)
    for name, (values, shape) in expected.items():
        assert_certified(grads[name], values, shape, fmt)


@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(HINGE))
def test_hinge_embedding_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, y, m = hinge_regime(regime, fmt)
    result = mg.hinge_embedding_loss(x, y, m, reduction, fmt)
    assert_certified(result, *hinge_exact(x, y, m, reduction), fmt)


@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(HINGE))
def test_hinge_embedding_loss_grad(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, y, m = hinge_regime(regime, fmt)
    g = _upstream(np.shape(x), reduction, fmt)
    grads = mg.hinge_embedding_loss_grad(g, x, y, m, reduction, fmt)
    assert set(grads) == {"input"}  # torch does not differentiate the target
    assert_certified(grads["input"], *hinge_grad_exact(g, x, y, m, reduction)["input"], fmt)


@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(MULTI))
def test_multi_margin_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, t, p, m, w = multi_regime(regime, fmt)
    result = mg.multi_margin_loss(x, t, p, m, w, reduction, fmt)
    assert_certified(result, *multi_exact(x, t, p, m, w, reduction), fmt)


@pytest.mark.parametrize("regime, reduction, fmt_name", _grid(MULTI))
def test_multi_margin_loss_grad(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, t, p, m, w = multi_regime(regime, fmt)
    g = _upstream(np.shape(t), reduction, fmt)
    grads = mg.multi_margin_loss_grad(g, x, t, p, m, w, reduction, fmt)
    assert set(grads) == {"input"}  # torch differentiates neither target nor weight
    assert_certified(grads["input"], *multi_grad_exact(g, x, t, p, m, w, reduction)["input"],
                     fmt)


# --- facts by hand -------------------------------------------------------------------------------

F64 = FORMATS["float64"]


def test_kink_conventions_follow_torch():
    """At z == 0: margin_ranking and hinge_embedding pass the gradient (clamp_min), multi_margin
    does not (its kernel's z > 0); values from torch 2.13."""
    one = np.array(1.0)
    r = mg.margin_ranking_loss_grad(one, np.array([1.0, 2.0]), np.array([0.0, 1.0]),
                                    np.array([1.0, 1.0]), 1.0, "sum", F64)
    assert r["input1"].rounded.tolist() == [-1.0, -1.0]
    assert r["target"].rounded.tolist() == [-1.0, -1.0]
    h = mg.hinge_embedding_loss_grad(one, np.array([1.0, 0.5, 2.0, -1.0]),
                                     np.array([-1.0, -1.0, 0.0, 1.0]), 1.0, "sum", F64)
    assert h["input"].rounded.tolist() == [-1.0, -1.0, 1.0, 1.0]
    mm = mg.multi_margin_loss_grad(one, np.array([[1.0, 0.0, 0.5, -3.0]]), np.array([0]), 1,
                                   1.0, None, "sum", F64)
    assert mm["input"].rounded.tolist() == [[-0.25, 0.0, 0.25, 0.0]]


def test_an_exact_tie_at_the_target_is_certified():
    """multi_margin_loss with p = 2, 'sum' over C = 3 classes: the target's gradient is
    -(2 z_1 + 2 z_2) / 3 = -(1 + 2^-24) (2 z_1 = 1, 2 z_2 = 2 + 3 2^-24), exactly halfway
    between two float32 numbers. The reference once divided each term by 3 before the sum:
    neither quotient is exact, so no ball of their sum could certify the tie (the speed
    ladder's 1024 x 1000 case with p = 2 was skipped for it). Ties to even round it to -1."""
    f32 = FORMATS["float32"]
    x = to_format([[0.0, -0.5, 3 * 2.0 ** -25]], f32)
    grads = mg.multi_margin_loss_grad(np.array(1.0), x, np.array([0]), 2, 1.0, None, "sum", f32)
    assert grads["input"].rounded[0, 0] == -1.0
    assert grads["input"].exact[0, 0] == -(1 + np.longdouble(2.0) ** -24)


def test_values_from_torch():
    """Spot values printed by torch 2.13 (float32): the weight is indexed by the target class,
    a hinge target other than +-1 takes both terms."""
    f32 = FORMATS["float32"]
    x = to_format([[0.1, 0.2, 0.4, 0.8], [1.0, 2.0, 3.0, 4.0]], f32)
    t = np.array([3, 0])
    got = mg.multi_margin_loss(x, t, 1, 1.0, np.array([1.0, 2.0, 3.0, 4.0]), "none", f32)
    np.testing.assert_allclose(got.rounded, [1.3, 2.25], rtol=1e-6)
    got = mg.multi_margin_loss(x, t, 2, 1.0, None, "none", f32)
    np.testing.assert_allclose(got.rounded, [0.1525, 7.25], rtol=1e-6)
    h = mg.hinge_embedding_loss(np.array([0.5, 2.0, 0.5, 2.0, 0.5, -1.0]),
                                np.array([1.0, 1.0, -1.0, -1.0, 0.0, 2.0]), 1.0, "none", f32)
    assert h.rounded.tolist() == [0.5, 2.0, 0.5, 0.0, 1.0, 1.0]


def test_exact_signs_where_long_double_cannot_decide():
    """The hinge's sign where the long double estimate is inside its error bound."""
    x1 = np.array([1e300, 1.0 + 2.0 ** -52, 0.5, 3.0])
    x2 = np.array([-1e-300, 2.0 ** -60, 0.5 - 2.0 ** -54, 1.0])
    y = np.array([1.0, 1.0, 1.0 + 2.0 ** -52, -0.5])
    m = [1e300, 1.0 + 2.0 ** -52, 2.0 ** -54, -1.0]
    # m - y (x1 - x2): -1e-300 < 0, 2**-60 > 0, 2**-54 - (1 + 2**-52) 2**-54 < 0, 0
    signs = [float(mg.ranking_sign(x1[i], x2[i], y[i], m[i])) for i in range(4)]
    assert signs == [-1.0, 1.0, -1.0, 0.0]
    label, x = np.array([1e300, 1.0, 1.0]), np.array([-1e-300, 2.0 ** -60, 0.0])
    multi = [float(mg.multi_sign(label[i], x[i], [1e300, 1.0, 1.0][i])) for i in range(3)]
    assert multi == [-1.0, 1.0, 0.0]


def test_empty_reductions():
    x = np.zeros(0)
    for reduction, check in (("mean", np.isnan), ("sum", lambda v: v == 0.0)):
        assert check(mg.margin_ranking_loss(x, x, x, 0.0, reduction, F64).rounded)
        assert check(mg.hinge_embedding_loss(x, x, 1.0, reduction, F64).rounded)
        assert check(mg.multi_margin_loss(np.zeros((0, 3)), np.zeros(0, np.int64), 1, 1.0, None,
                                          reduction, F64).rounded)
