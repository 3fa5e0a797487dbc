"""The elementwise double-double tier (loss_reference/elementwise_fast.py): what it certifies is
the correctly rounded (u - v) f g / count (exact rationals, Python's correctly rounded integer
division), over magnitudes from subnormal to huge, zeros, non-finite inputs (left), and it
certifies every ordinary element; through margin_ranking_loss's gradients, a typical batch is
this tier's whole. Likewise the pointwise family's terms and slopes (l1, mse, huber,
smooth_l1) against exact rationals, at and across the kink, with float64 ties.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from loss_reference import elementwise_fast as tier
from loss_reference import engine, margin
from loss_reference import pointwise as pw
from loss_reference.compiled_kernels import TIER, exact_divisor
from loss_reference.formats import FORMATS
from test_reference import correctly_round

pytest.importorskip("numba", reason="numba is not installed")
FLOAT64 = FORMATS["float64"]
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 10),
                    st.sampled_from([0.0, 1.0, -1.0, 5e-324, 2.0 ** -1000, 1e300]))


def exact(u, v, f, g, count) -> float:
    """(u - v) f g / count rounded once to float64 (inf where it overflows); numpy numbers made
    Python's first (a Fraction of a numpy integer keeps int64 parts, which overflow)."""
    u, v, f, g = (Fraction(float(a)) for a in (u, v, f, g))
    value = (u - v) * f * g / int(count)
    try:
        return value.numerator / value.denominator
    except OverflowError:
        return np.inf if value > 0 else -np.inf


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(numbers, numbers, numbers, numbers), min_size=1, max_size=10),
       st.sampled_from([1, 3, 1024000]))
# a partial product below the domain (-8.25 times 2.2e-311, subnormal) whose result is normal:
# hypothesis found it; the relative bound of that product does not hold
@example([(0.0, 8.25, 2.225073858507e-311, 5.589922446579343e+20)], 1)
def test_certified_elements_are_the_correctly_rounded_ones(elements, count):
    u, v, f, g = (np.array(column) for column in zip(*elements))
    known = tier.scaled_differences(u, v, f, g, count)
    finite = np.isfinite(u) & np.isfinite(v) & np.isfinite(f) & np.isfinite(g)
    want = np.array([exact(*e, count) if ok else np.nan for e, ok in zip(elements, finite)])
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    assert not known.ok[~finite].any()
    ordinary = finite & np.all([(np.abs(a) > 1e-100) & (np.abs(a) < 1e100) for a in (u, f, g)],
                               axis=0) & (v == 0)
    assert known.ok[ordinary].all()


def test_margin_ranking_gradients_of_a_typical_batch():
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal(300), rng.standard_normal(300)
    y = rng.choice([-1.0, 1.0], 300)
    engine.STATS.clear()
    grads = margin.margin_ranking_loss_grad(np.array(1.0), x1, x2, y, 0.1, "mean", FLOAT64)
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == 3 * 300
    active = margin.ranking_sign(x1, x2, y, 0.1) >= 0
    want = [exact(x2[i], x1[i], float(active[i]), 1.0, 300) for i in range(300)]
    assert np.array_equal(grads["target"].rounded, want)
    assert np.array_equal(grads["input1"].rounded, [exact(0.0, y[i], float(active[i]), 1.0, 300)
                                                    for i in range(300)])


def ranking_exact(x1, x2, y, m) -> Fraction:
    """max(0, m - y (x1 - x2)) exactly (finite arguments)."""
    x1, x2, y, m = (Fraction(float(a)) for a in (x1, x2, y, m))
    return max(Fraction(0), m - y * (x1 - x2))


def nearest(value: Fraction) -> float:
    """value rounded once to float64, ties to even (Python's true division of integers; inf
    where it overflows)."""
    try:
        return value.numerator / value.denominator
    except OverflowError:
        return np.inf if value > 0 else -np.inf


margins = st.one_of(st.sampled_from([0.0, 0.5, -0.25, 1e-300, 1e300]), st.floats(-10, 10))
labels = st.one_of(st.sampled_from([1.0, -1.0]), numbers)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(numbers, numbers, labels), min_size=1, max_size=10), margins,
       st.sampled_from(["none", "sum", "mean"]))
# 0.5 + 2^52 + 2.3e-262 is not a double-double: its tail breaks the tie of 2^52 + 0.5 upwards
@example([(-2.3024088367336053e-262, 4503599627370496.0, 1.0)], 0.5, "none")
# y (x1 - x2) exactly 0 (y = 0): the term max(0, m), 0 for a negative margin
@example([(1.0, 2.0, 0.0)], -0.25, "none")
def test_ranking_terms_certified_are_the_correctly_rounded_ones(elements, m, reduction):
    """margin_ranking_loss's terms: for y = +-1 exact (their signs decided, float64 ties
    certified: a difference of two inputs needs a 54th bit as often as not), other labels
    within a relative bound; the decided signs and the totals are the exact ones."""
    x1, x2, y = (np.array(column) for column in zip(*elements))
    known, active = tier.ranking_loss(x1, x2, y, m, reduction)
    finite = np.isfinite(x1) & np.isfinite(x2) & np.isfinite(y)
    terms = [ranking_exact(*e, m) if ok else None for e, ok in zip(elements, finite)]
    decided = ~np.isnan(active)
    assert not decided[~finite].any()
    for i in np.flatnonzero(decided):
        assert active[i] == (terms[i] > 0)
    if reduction == "none":
        want = np.array([nearest(t) if t is not None else np.nan for t in terms])
        assert np.array_equal(known.rounded[known.ok], want[known.ok])
        def moderate(a):  # within 2^70 of 1 or 0: the three numbers a double-double
            return (a == 0) | (np.abs(a) > 1e-10) & (np.abs(a) < 1e10)

        plain = (finite & np.isin(y, [1.0, -1.0]) & moderate(x1) & moderate(x2)
                 & moderate(np.array(m)))
        assert known.ok[plain & ((np.abs(want) > 1e-200) | (want == 0))].all()
    elif known.ok:
        total = sum(terms, Fraction(0))
        assert known.rounded == nearest(total / (len(terms) if reduction == "mean" else 1))


@pytest.mark.parametrize("margin_value", [0.0, 0.5])
def test_ranking_losses_of_a_typical_batch_are_this_tiers(margin_value):
    """A batch like the speed ladder's (scores N(0,1), labels +-1) through the reference: every
    term and total this tier's, the exact ones rounded, ties included."""
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal(300), rng.standard_normal(300)
    y = rng.choice([-1.0, 1.0], 300)
    terms = [ranking_exact(a, b, c, margin_value) for a, b, c in zip(x1, x2, y)]
    for reduction in ("none", "sum", "mean"):
        engine.STATS.clear()
        out = margin.margin_ranking_loss(x1, x2, y, margin_value, reduction, FLOAT64)
        assert engine.STATS[TIER] == sum(engine.STATS.values())
        want = ([nearest(t) for t in terms] if reduction == "none" else
                nearest(sum(terms, Fraction(0)) / (300 if reduction == "mean" else 1)))
        assert np.array_equal(out.rounded, np.array(want))


def test_multi_margin_gradients_of_a_typical_batch():
    """p = 1: g w[y] / (C N) at each active hinge, minus their count times it at the target;
    every element certified by this tier."""
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((40, 7)), rng.integers(0, 7, 40)
    w = rng.uniform(0.5, 2, 7)
    engine.STATS.clear()
    grad = margin.multi_margin_loss_grad(np.array(1.0), x, t, 1, 1.0, w, "mean",
                                         FLOAT64)["input"]
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == 40 * 7 + 40
    for i in range(40):
        active = [j != t[i] and 1 - Fraction(x[i, t[i]]) + Fraction(x[i, j]) > 0
                  for j in range(7)]
        for j in range(7):
            count, sign = (sum(active), -1.0) if j == t[i] else (active[j], 1.0)
            assert grad.rounded[i, j] == exact(count, 0.0, w[t[i]], sign, 7 * 40)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(2, 7), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([1.0, 0.5, 1e-20]), st.sampled_from(["mean", "sum", "none"]))
# a hinge 1 + 2^52 + 2.3e-262 that is no double-double: its row is left to the engine
@example(1, 2, 0, 1.0, "sum")
def test_squared_hinge_slopes_are_the_correctly_rounded_ones(n, C, seed, margin_value,
                                                             reduction):
    """multi_margin_loss's gradient for p = 2 through the reference: 2 g w[y] h / (C N') at
    each active hinge h = m - x[y] + x[j] (exact rationals, rounded once), minus their sum at
    the target; scores spread over 80 binades (hinges that are no double-double), upstream
    gradients of both signs and 0, class weights."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, C)) * rng.choice([1.0, 1e-20, 1e20], (n, C))
    t = rng.integers(0, C, n)
    if seed == 0:
        x[0, :2], t[0] = [-2.3024088367336053e-262, 4503599627370496.0], 0
    w = rng.choice([1.0, 0.3, 2.5], C)
    g = rng.choice([1.0, -0.7, 0.0], n)
    grad = margin.multi_margin_loss_grad(g if reduction == "none" else np.array(0.75), x, t, 2,
                                         margin_value, w, reduction, FLOAT64)["input"]
    upstream = g if reduction == "none" else np.full(n, 0.75)
    scale = C * (n if reduction == "mean" else 1)
    for i in range(n):
        m, top = Fraction(margin_value), Fraction(x[i, t[i]])
        hinges = [max(m - top + Fraction(v), Fraction(0)) if j != t[i] else Fraction(0)
                  for j, v in enumerate(x[i])]
        factor = 2 * Fraction(upstream[i]) * Fraction(w[t[i]]) / scale
        for j in range(C):
            value = -factor * sum(hinges) if j == t[i] else factor * hinges[j]
            assert grad.rounded[i, j] == nearest(value)
    off, on = tier.squared_hinge_slopes(*_squared_parts(x, t, w, margin_value), upstream, scale)
    assert off.ok.any() or not (g != 0).any()


def _squared_parts(x, t, w, margin_value):
    """(x, x at the target, active hinges, w[y]) of multi_margin_loss, as the reference's."""
    x, x_label, active, _, w_label = margin._multi_parts(x, t, w, margin_value)
    return x, x_label, active, margin_value, w_label


# --- the pointwise family ------------------------------------------------------------------------

def pointwise_exact(name, k, x, y, w, g, slope, divisor) -> float:
    """The pointwise term (or its slope in x) of z = x - y, times w g / divisor, in exact
    rationals rounded once to float64 (Python's correctly rounded division)."""
    value = pointwise_value(name, k, x, y, w, g, slope, divisor)
    return value.numerator / value.denominator


def pointwise_value(name, k, x, y, w, g, slope, divisor) -> Fraction:
    """``pointwise_exact``'s exact rational."""
    z = Fraction(float(x)) - Fraction(float(y))
    k = Fraction(float(k))
    sign = (z > 0) - (z < 0)
    quadratic = abs(z) < k
    if name == "l1_loss" or (name == "smooth_l1_loss" and k == 0):
        value = sign if slope else abs(z)
    elif name == "mse_loss":
        value = 2 * z if slope else z * z
    elif name == "huber_loss":
        value = (z if quadratic else k * sign) if slope else (
            z * z / 2 if quadratic else k * (abs(z) - k / 2))
    else:
        value = (z / k if quadratic else sign) if slope else (
            z * z / 2 / k if quadratic else abs(z) - k / 2)
    return Fraction(value) * Fraction(float(w)) * Fraction(float(g)) / divisor


residuals = st.one_of(st.floats(-10, 10), st.floats(-1e-3, 1e-3),
                      st.sampled_from([0.0, 1.0, -1.0, 0.5, 1 + 2.0 ** -52, 2.0 ** -1000]))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss"]),
       st.sampled_from([0.0, 0.5, 1.0, 1.5]), st.booleans(),
       st.lists(st.tuples(residuals, residuals, st.sampled_from([1.0, 0.0, -2.5, 0.3]),
                          st.sampled_from([1.0, -0.7, 3.0])), min_size=1, max_size=12),
       st.sampled_from([(1.0, 0.0), (3.0, 0.0), (0.1, -5.551115123125783e-18)]))
# a weight 5e-324 times the slope -1 is subnormal, so its product's bound fails although the
# result over the sum of weights (5e-324) is normal: the element is left, never certified
@example("l1_loss", 1.0, True, [(-1e30, 30000.0, 5e-324, -0.5641399530761051)], (5e-324, 0.0))
def test_pointwise_certified_elements_are_the_correctly_rounded_ones(name, k, slope, elements,
                                                                      divisor):
    """Residuals at and across the kink (|x - y| = k), differences that are float64 ties
    (1 + 2^-52 - 0.5), a divisor given as a double-double (0.1 exactly as hi + lo)."""
    if k == 0 and name == "huber_loss":
        k = 1.0  # huber's delta is positive
    x, y, w, g = (np.array(column) for column in zip(*elements))
    hi, lo, _, ok = tier.pointwise_terms(name, k, x, y, w, g, slope, divisor)
    D = Fraction(divisor[0]) + Fraction(divisor[1])
    want = np.array([pointwise_exact(name, k, *e, slope, D) for e in elements])
    assert np.array_equal(hi[ok], want[ok])
    # exact values (|z|, signs, 2 z, z: no product of w or g, no divisor) are certified, ties
    # of float64 included; a product may be a tie too, which only the engine's exact balls take
    exact_values = (w == 1) & (g == 1) & (np.abs(x - y) > 1e-300)
    if divisor == (1.0, 0.0) and (name == "l1_loss" or (slope and name != "smooth_l1_loss")):
        assert ok[exact_values].all()


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss"])
@pytest.mark.parametrize("k", [1.0, 0.5])
def test_pointwise_losses_of_a_typical_batch_are_this_tiers(name, k):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(500), rng.standard_normal(500)
    options = {"delta": k} if name == "huber_loss" else {"beta": k}
    engine.STATS.clear()
    grads = pw.loss_grad(name, np.array(0.75), x, y, None, options, "mean", FLOAT64)
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == 500
    want = [pointwise_exact(name, k, x[i], y[i], 1.0, 0.75, True, 500) for i in range(500)]
    assert np.array_equal(grads["input"].rounded, want)
    engine.STATS.clear()
    total = pw.loss(name, x, y, None, options, "sum", FLOAT64)
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == 1
    exact_total = sum(pointwise_value(name, k, x[i], y[i], 1.0, 1.0, False, 1)
                      for i in range(500))
    assert total.rounded == exact_total.numerator / exact_total.denominator
    terms = pw.loss(name, x, y, None, options, "none", FLOAT64)
    want = [pointwise_exact(name, k, x[i], y[i], 1.0, 1.0, False, 1) for i in range(500)]
    assert np.array_equal(terms.rounded, want)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["l1_loss", "mse_loss"]), st.sampled_from(["float64", "float32"]),
       st.lists(st.tuples(residuals, residuals,
                          st.sampled_from([1.0, 0.5, -0.25, 3.0, 0.1, 1 / 3, 0.7]),
                          st.sampled_from([1.0, -0.7, 0.0])), min_size=1, max_size=40),
       st.booleans())
def test_weight_slopes_of_a_weighted_mean_are_the_correctly_rounded_ones(name, dtype, elements,
                                                                         at_the_mean):
    """d/dw_i of sum(w t) / sum(w) = g (t_i W - A) / W^2, for float64 and float32 results
    (float32's float64 balls left every weight to long double): exact rationals rounded, where
    t_i W - A cancels (terms equal to the mean: exactly 0), weights of either sign."""
    x, y, w, g = (np.array(column) for column in zip(*elements))
    if at_the_mean:  # every term the same: each slope exactly 0
        x, y = np.full(x.size, x[0]), np.full(y.size, y[0])
    fmt = FORMATS[dtype]
    W = sum(Fraction(v) for v in w)
    if W == 0:
        return  # the weighted mean is undefined (nan: the caller's)
    divisor = exact_divisor(w)
    known = tier.pointwise_weight_gradient(name, 0.0, x, y, w, g, divisor, True, fmt)
    t = [pointwise_value(name, 0.0, a, b, 1.0, 1.0, False, 1) for a, b in zip(x, y)]
    A = sum(Fraction(wi) * ti for wi, ti in zip(w, t))
    want = [correctly_round(Fraction(gi) * (ti * W - A) / (W * W), fmt)[0]
            for gi, ti in zip(g, t)]
    assert np.array_equal(known.rounded[known.ok], np.array(want)[known.ok])
    if at_the_mean and x[0] == y[0]:
        assert known.ok.all()  # every term 0, so A: each slope exactly 0, certified
    # (other terms at the mean give t W - A = 0 within A's bound, never exactly: the engine's)
    grads = pw.loss_grad(name, g, x, y, w, {}, "mean", fmt)
    if known.ok.all():
        assert np.array_equal(grads["weight"].rounded, want)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_hinge_embedding_losses_of_a_typical_batch_are_this_tiers(reduction):
    """Each term is x (y = 1), max(0, m - x) (y = -1) or both (any other y): u - v for
    u, v in {x, m, 0}, exact, certified as its own rounding (m - x is often a float64 tie);
    the slope g ([y != -1] - [y != 1][m - x >= 0]) / N with it."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(400) * 3
    y = rng.choice([1.0, -1.0, 0.5], 400)
    m = 1.25
    count = 400 if reduction == "mean" else 1
    engine.STATS.clear()
    value = margin.hinge_embedding_loss(x, y, m, reduction, FLOAT64)
    grad = margin.hinge_embedding_loss_grad(np.array(0.75), x, y, m, reduction, FLOAT64)
    assert engine.STATS[TIER] == sum(engine.STATS.values())
    terms, slopes = [], []
    for xi, yi in zip(x, y):
        hinge = Fraction(m) - Fraction(xi)
        terms.append((Fraction(xi) if yi != -1 else 0) + (max(hinge, 0) if yi != 1 else 0))
        slopes.append(Fraction(3, 4) * (int(yi != -1) - int(yi != 1 and hinge >= 0)) / count)
    if reduction == "none":
        assert np.array_equal(value.rounded, [t.numerator / t.denominator for t in terms])
    else:
        total = sum(terms) / count
        assert value.rounded == total.numerator / total.denominator
    assert np.array_equal(grad["input"].rounded, [s.numerator / s.denominator for s in slopes])
