"""The binary references (loss_reference/binary.py), proved against independent arithmetic.

binary_cross_entropy's value and target gradient, and binary_cross_entropy_with_logits' values
and gradients, are computed with mpmath (70+ digits, every value twice at different
precisions); binary_cross_entropy's input gradient g w (p - y) / max(p (1 - p), eps) / N is
rational and computed with ``fractions.Fraction``. Each expectation is rounded to the format by
test_reference's ``correctly_round`` and must equal the certified reference, on every regime,
reduction and format. The constants (the clamp's bracket of exp(-100), torch's eps), the values
at p = 0 and 1 and at infinite logits are checked by hand.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from mpmath import mp, mpf
from test_reference import assert_certified, exact_twice, to_format

from loss_reference import binary as bn
from loss_reference.formats import FORMATS
from conformance.specs import REDUCTIONS

FORMAT_NAMES = tuple(FORMATS)
G_VECTOR = [0.75, -2.5, 1.25, -0.375, 2.0, 0.5, -1.0, 3.0]
G_SCALAR = -2.5


def _upstream(shape, reduction, fmt):
    if reduction != "none":
        return to_format(G_SCALAR, fmt)
    return to_format(np.resize(G_VECTOR, shape) if shape else G_VECTOR[0], fmt)


def _flat(values, shape):
    return [float(v) for v in np.broadcast_to(np.asarray(values, np.float64), shape).reshape(-1)]


def _reduce(terms, shape, reduction):
    if reduction == "none":
        return terms, shape
    total = mp.fsum(terms)
    if reduction == "sum":
        return [total], ()
    return [total / len(terms) if terms else math.nan], ()


# --- binary_cross_entropy: the oracle ------------------------------------------------------------

def bce_exact(p, y, w, reduction, guard):
    """-w (y max(log p, -100) + (1 - y) max(log1p(-p), -100)), reduced, in mpmath."""
    shape = np.shape(p)
    with mp.workdps(70 + guard):
        terms = []
        for a, b, c in zip(_flat(p, shape), _flat(y, shape), _flat(w, shape)):
            log_p = max(mp.log(mpf(a)), -100) if a > 0 else mpf(-100)
            log_q = max(mp.log1p(-mpf(a)), -100) if a < 1 else mpf(-100)
            terms.append(-mpf(c) * (mpf(b) * log_p + (1 - mpf(b)) * log_q))
        return _reduce(terms, shape, reduction)


def bce_grad_exact(g, p, y, w, reduction, guard):
    """d/dp (rational) and d/dy (mpmath), torch's formulas, for 0 < p < 1 in d/dy."""
    shape = np.shape(p)
    n = max(int(np.prod(shape)), 1) if reduction == "mean" else 1
    eps = Fraction(bn.EPSILON)
    d_input, d_target = [], []
    with mp.workdps(70 + guard):
        for a, b, c, d in zip(_flat(p, shape), _flat(y, shape), _flat(w, shape), _flat(g, shape)):
            pa, yb, wc, gd = (Fraction(v) for v in (a, b, c, d))
            d_input.append(gd * wc * (pa - yb) / max(pa * (1 - pa), eps) / n)
            d_target.append(mpf(d) * mpf(c) * (mp.log1p(-mpf(a)) - mp.log(mpf(a))) / n)
    return {"input": (d_input, shape), "target": (d_target, shape)}


def bce_regime(name, fmt):
    """(p, y, w or None), representable in fmt."""
    w = None
    if name == "normal":
        p = [[0.25, 0.5, 0.8125, 0.1], [0.375, 0.9, 0.03, 0.6]]
        y = [[1, 0, 0.25, 1], [0, 1, 0.5, 0.6]]
    elif name == "ends":
        p, y = [0.0, 0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.5, 0.0, 1.0, 0.5]
    elif name == "clamp":  # float32 subnormals on either side of exp(-100), and float64's bracket
        p = [26 * 2.0 ** -149, 27 * 2.0 ** -149, bn.CLAMP_BELOW,
             float(np.nextafter(bn.CLAMP_BELOW, 1)), 1e-300, 2.0 ** -1074]
        y = [1.0, 1.0, 1.0, 1.0, 0.75, 1.0]
    elif name == "tiny":  # loss ~ p for y = 0 (log1p), gradients at eps
        p, y = [1e-10, 3e-30, 1e-13, 1e-5, 2.0 ** -126], [0.0, 0.0, 1.0, 0.0, 0.25]
    elif name == "near-one":
        p, y = [1 - 2.0 ** -24, 1 - 2.0 ** -11, 1 - 2.0 ** -53, 0.999], [0.0, 1.0, 0.0, 0.5]
    elif name == "weighted":  # a weight of the last dimension, with a zero and a negative
        p, y = [[0.25, 0.5, 0.75], [0.125, 0.9, 0.3]], [[1, 0, 0.5], [0, 1, 0.25]]
        w = [2.5, 0.0, -0.5]
    elif name == "overflow":  # float16: 800 terms of 100 leave the range; the mean does not
        p, y = [0.0] * 800, [1.0] * 800
    elif name == "empty":
        p, y = np.zeros((2, 0)), np.zeros((2, 0))
    elif name == "scalar":
        p, y = 0.25, 1.0
    else:
        raise AssertionError(name)
    return to_format(p, fmt), to_format(y, fmt), None if w is None else to_format(w, fmt)


BCE_REGIMES = ("normal", "ends", "clamp", "tiny", "near-one", "weighted", "overflow", "empty",
               "scalar")
BCE_GRID = [pytest.param(r, red, f, id=f"{r}-{red}-{f}")
            for r, red, f in itertools.product(BCE_REGIMES, REDUCTIONS, FORMAT_NAMES)]


@pytest.mark.parametrize("regime, reduction, fmt_name", BCE_GRID)
def test_bce_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    p, y, w = bce_regime(regime, fmt)
    weight = np.ones(()) if w is None else w
    values, shape = exact_twice(lambda guard: bce_exact(p, y, weight, reduction, guard), fmt)
    result = bn.binary_cross_entropy(p, y, w, reduction, fmt)
    assert_certified(result, values, shape, fmt)
    if regime == "overflow" and fmt_name == "float16":
        assert (result.rounded == np.inf).any() == (reduction == "sum")


@pytest.mark.parametrize("regime, reduction, fmt_name", BCE_GRID)
def test_bce_grad(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    p, y, w = bce_regime(regime, fmt)
    weight = np.ones(()) if w is None else w
    g = _upstream(np.shape(p), reduction, fmt)
    grads = bn.binary_cross_entropy_grad(g, p, y, w, reduction, fmt)
    assert set(grads) == {"input", "target"}
    inner = (p > 0) & (p < 1)
    safe = np.where(inner, p, 0.5)  # d/dy at p = 0 and 1 is infinite: test_bce_at_the_ends
    expected = exact_twice(lambda guard: bce_grad_exact(g, safe, y, weight, reduction, guard), fmt)
    exact_input = bce_grad_exact(g, p, y, weight, reduction, 0)["input"]
    assert_certified(grads["input"], *exact_input, fmt)
    values, shape = expected["target"]
    keep = inner.reshape(-1)
    target = grads["target"]
    assert_certified(type(target)(target.rounded.reshape(-1)[keep], target.exact.reshape(-1)[keep]),
                     [v for v, k in zip(values, keep) if k], (int(keep.sum()),), fmt)


# --- binary_cross_entropy_with_logits: the oracle ------------------------------------------------

def _softplus(t):
    return mp.log1p(mp.exp(t))


def _dps(x, guard):
    """Digits that keep 70 correct ones: softplus(t) = t + log1p(exp(-t)), whose tail decides a
    rounding where t alone sits on a tie, needs |t| / ln 10 more (logits here are <= 100)."""
    largest = float(np.max(np.abs(np.asarray(x, np.float64)), initial=0.0))
    return 70 + math.ceil(min(largest, 200.0) / math.log(10)) + guard


def logits_exact(x, y, w, q, reduction, guard):
    shape = np.shape(x)
    with mp.workdps(_dps(x, guard)):
        terms = [mpf(c) * ((1 - mpf(b)) * _softplus(mpf(a)) + mpf(d) * mpf(b) * _softplus(-mpf(a)))
                 for a, b, c, d in zip(_flat(x, shape), _flat(y, shape), _flat(w, shape),
                                       _flat(q, shape))]
        return _reduce(terms, shape, reduction)


def logits_grad_exact(g, x, y, w, q, reduction, guard):
    shape = np.shape(x)
    n = max(int(np.prod(shape)), 1) if reduction == "mean" else 1
    d_input, d_target = [], []
    with mp.workdps(_dps(x, guard)):
        for a, b, c, d, e in zip(*(_flat(v, shape) for v in (x, y, w, q, g))):
            a, b, scale, d = mpf(a), mpf(b), mpf(e) * mpf(c) / n, mpf(d)
            sig, sig_neg = 1 / (1 + mp.exp(-a)), 1 / (1 + mp.exp(a))
            d_input.append(scale * ((1 - b) * sig - d * b * sig_neg))
            # log s(-x) - q log s(x) = (q - 1) softplus(-x) - x: exactly -x at q = 1
            d_target.append(scale * ((d - 1) * _softplus(-a) - a))
    return {"input": (d_input, shape), "target": (d_target, shape)}


def logits_regime(name, fmt):
    """(x, y, w or None, pos_weight or None), representable in fmt."""
    w = q = None
    if name == "normal":
        x, y = [[1.25, -3.5, 4.75, -1.0625], [0.0, 0.8125, -2.0, 3.0]], [[1, 0, 1, 1], [0, 0, 1, 0]]
    elif name == "saturated":
        x = [20.0, 40.0, 100.0, -20.0, -40.0, -100.0]
        y = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    elif name == "soft-pos-weight":  # B30: pos_weight with soft targets, broadcast over classes
        x, y = [[1.25, -3.5, 4.75], [-0.5, 17.0, -9.0]], [[0.25, 0.5, 0.75], [0.1, 0.9, 0.375]]
        q = [3.0, 0.5, 10.0]
    elif name == "pos-weight-zero":
        x, y, q = [-40.0, 2.5, -1.5, 30.0], [1.0, 0.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]
    elif name == "weighted":
        x, y = [[1.25, -3.5, 4.75], [2.5, 0.8125, -2.0]], [[0.5, 1.0, 0.0], [1.0, 0.25, 0.0]]
        w, q = [[-1.0, 0.0, 0.5], [2.0, -0.25, 1.5]], 2.5
    elif name == "tiny":
        # (y = 1/2 would make sigmoid(x) - y cancel: the rounding certifies, but the long
        # double estimate, used only to report errors, is then only ~1e-11 relative)
        x, y = [1e-8, -3e-8, 2.5e-9, 0.0], [1.0, 0.0, 0.0, 1.0]
    elif name == "subnormal":
        s = fmt.smallest_subnormal
        x, y = [s, -s, 5 * s, 0.0], [1.0, 1.0, 0.0, 0.0]
    elif name == "empty":
        x, y = np.zeros((0, 3)), np.zeros((0, 3))
    elif name == "scalar":
        x, y = -1.5, 1.0
    else:
        raise AssertionError(name)
    return (to_format(x, fmt), to_format(y, fmt), None if w is None else to_format(w, fmt),
            None if q is None else to_format(q, fmt))


LOGIT_REGIMES = ("normal", "saturated", "soft-pos-weight", "pos-weight-zero", "weighted", "tiny",
                 "subnormal", "empty", "scalar")
LOGIT_GRID = [pytest.param(r, red, f, id=f"{r}-{red}-{f}")
              for r, red, f in itertools.product(LOGIT_REGIMES, REDUCTIONS, FORMAT_NAMES)]


def _ones(value):
    return np.ones(()) if value is None else value


@pytest.mark.parametrize("regime, reduction, fmt_name", LOGIT_GRID)
def test_logits_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, y, w, q = logits_regime(regime, fmt)
    values, shape = exact_twice(
        lambda guard: logits_exact(x, y, _ones(w), _ones(q), reduction, guard), fmt)
    result = bn.binary_cross_entropy_with_logits(x, y, w, q, reduction, fmt)
    assert_certified(result, values, shape, fmt)


@pytest.mark.parametrize("regime, reduction, fmt_name", LOGIT_GRID)
def test_logits_grad(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, y, w, q = logits_regime(regime, fmt)
    g = _upstream(np.shape(x), reduction, fmt)
    expected = exact_twice(
        lambda guard: logits_grad_exact(g, x, y, _ones(w), _ones(q), reduction, guard), fmt)
    grads = bn.binary_cross_entropy_with_logits_grad(g, x, y, w, q, reduction, fmt)
    assert set(grads) == {"input", "target"}
    for argument, (values, shape) in expected.items():
        assert_certified(grads[argument], values, shape, fmt)


# --- facts by hand -------------------------------------------------------------------------------

F32 = FORMATS["float32"]


def test_constants():
    """CLAMP_BELOW is the largest double below exp(-100); EPSILON is torch's float 1e-12."""
    with mp.workdps(60):
        bound = mp.exp(-100)
        assert mpf(bn.CLAMP_BELOW) < bound < mpf(float(np.nextafter(bn.CLAMP_BELOW, 1)))
    assert bn.EPSILON == float(np.float32(1e-12))


def test_clamp_boundary_in_float32():
    """26 * 2**-149 < exp(-100) < 27 * 2**-149: the first is clamped to 100, the second not."""
    p = np.array([26 * 2.0 ** -149, 27 * 2.0 ** -149])
    loss = bn.binary_cross_entropy(p, np.ones(2), None, "none", F32).rounded
    assert loss[0] == 100.0 and 99.9 < loss[1] < 100.0


def test_bce_at_the_ends():
    """The clamp gives 100 per wrong element, 0 per right one; d/dp is finite (eps), d/dy is
    -logit(p): +inf at 0, -inf at 1, nan where g w = 0."""
    p, y = np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.0, 1.0])
    assert bn.binary_cross_entropy(p, y, None, "none", F32).rounded.tolist() == [0, 100, 100, 0]
    g = np.array([1.0, 1.0, -2.0, 0.0])
    grads = bn.binary_cross_entropy_grad(g, p, y, None, "none", F32)
    assert grads["input"].rounded[0] == 0.0 and grads["input"].rounded[3] == 0.0
    assert grads["input"].rounded[1] == float(np.float32(-1 / bn.EPSILON))
    target = grads["target"].rounded
    assert target[0] == np.inf and target[1] == np.inf and target[2] == np.inf
    assert np.isnan(target[3])


def test_logits_at_infinity():
    """Limits: 0 at +inf with y = 1, +inf with y < 1; at -inf +inf with q y > 0, else 0; the
    weight multiplies with 0 * inf = nan; a sum with +inf and -inf is nan."""
    inf = np.inf
    x = np.array([inf, inf, -inf, -inf, -inf, inf])
    y = np.array([1.0, 0.5, 1.0, 0.0, 0.5, 0.5])
    q = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    w = np.array([1.0, 1.0, 2.0, 1.0, 1.0, 0.0])
    loss = bn.binary_cross_entropy_with_logits(x, y, w, q, "none", F32).rounded
    assert loss[:5].tolist() == [0.0, inf, inf, 0.0, 0.0] and np.isnan(loss[5])
    signed = np.array([1.0, -1.0])
    total = bn.binary_cross_entropy_with_logits(np.array([inf, inf]), np.zeros(2), signed, None,
                                                "sum", F32).rounded
    assert np.isnan(total)
    grads = bn.binary_cross_entropy_with_logits_grad(np.ones(6), x, y, w, q, "none", F32)
    assert grads["input"].rounded.tolist() == [0.0, 0.5, -2.0, 0.0, 0.0, 0.0]
    target = grads["target"].rounded
    assert target[:5].tolist() == [-inf, -inf, inf, inf, 0.0] and np.isnan(target[5])


def test_huge_logits_certify_fast():
    """Beyond X_CAP the tails are capped: a bfloat16 tie (1 - y) x at x = 1e30 certifies."""
    fmt = FORMATS["bfloat16"]
    x = to_format([1e30, -1e30, 3e38], fmt)
    y = to_format([0.25, 0.25, 0.5], fmt)
    q = to_format([3.0, 3.0, 1.0], fmt)
    loss = bn.binary_cross_entropy_with_logits(x, y, None, q, "none", fmt).rounded
    assert np.all(np.isfinite(loss))
    grads = bn.binary_cross_entropy_with_logits_grad(np.full(3, 0.75), x, y, None, q, "none", fmt)
    assert grads["input"].rounded.tolist() == [0.5625, -0.5625, 0.375]


def test_logits_target_slope_at_infinity_times_a_product_that_underflows():
    """d/dy at x = +inf is -inf (and q inf at -inf), times g w / N': with g = -5e-324 and
    w = 0.276 the float64 product g w rounds to -0, the exact one does not, so the gradient
    is +inf (it was nan); g = 0 makes it nan (0 inf)."""
    x, y = np.array([np.inf, -np.inf]), np.array([0.0, 1.0])
    fmt = FORMATS["float64"]
    w, q = np.full(2, 0.27573296), np.array([2.0, 2.0])
    grads = bn.binary_cross_entropy_with_logits_grad(np.full(2, -5e-324), x, y, w, q, "none",
                                                     fmt)
    assert grads["target"].rounded.tolist() == [math.inf, -math.inf]
    grads = bn.binary_cross_entropy_with_logits_grad(np.zeros(2), x, y, w, q, "none", fmt)
    assert np.isnan(grads["target"].rounded).all()


def test_target_slope_at_the_ends_times_a_product_that_underflows():
    """d/dy at p = 0 and 1 is +inf and -inf, times g w / N': with g = 5e-324 and w = 0.5 the
    float64 product g w rounds to 0, but the exact one is not, so the slopes stay infinite
    (they were nan: the totality test's seed 86); g = 0 makes them nan (0 inf)."""
    p, y = np.array([0.0, 1.0]), np.array([0.0, 0.0])
    fmt = FORMATS["float64"]
    grads = bn.binary_cross_entropy_grad(np.array(5e-324), p, y, np.array(0.5), "mean", fmt)
    assert grads["target"].rounded.tolist() == [math.inf, -math.inf]
    grads = bn.binary_cross_entropy_grad(np.array(0.0), p, y, np.array(0.5), "mean", fmt)
    assert np.isnan(grads["target"].rounded).all()
