"""The logistic losses' float64 double-double tier (loss_reference/logistic_fast.py): what it
certifies is the correctly rounded result of an mpmath oracle at 300 bits, for
binary_cross_entropy_with_logits' terms and slopes (weights, pos_weight) and
multilabel_soft_margin_loss's row means and totals, on targets near sigmoid(x) (where the slope
cancels), targets outside [0, 1], logits from tiny to beyond the tier's domain, zero weights; and
it certifies typical batches whole, through the references.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf

from loss_reference import binary, engine, multilabel, pointwise
from loss_reference import logistic_fast as tier
from loss_reference.compiled_kernels import TIER, kernels
from loss_reference.formats import FORMATS

pytest.importorskip("numba", reason="numba is not installed")
FLOAT64 = FORMATS["float64"]


def oracle(x, y, q, w, g, count, what):
    """w g / count times (1 - y) softplus(x) + q y softplus(-x) (what 0), (1 - y) sigmoid(x)
    - q y sigmoid(-x) (1) or (q - 1) softplus(-x) - x (2), per element at 300 bits, as mpf."""
    out = []
    with mp.workprec(300):
        for xi, yi, qi, wi, gi in zip(x, y, q, w, g):
            xi, yi, qi = mpf(xi), mpf(yi), mpf(qi)
            if what == 2:
                value = (qi - 1) * mp.log1p(mp.exp(-xi)) - xi if mp.isfinite(xi) else -xi
            elif what == 0:
                value = ((1 - yi) * mp.log1p(mp.exp(xi)) + qi * yi * mp.log1p(mp.exp(-xi)))
            else:
                value = (1 - yi) / (1 + mp.exp(-xi)) - qi * yi / (1 + mp.exp(xi))
            out.append(value * mpf(wi) * mpf(gi) / count)
    return out


def full_mantissa(seed: int) -> float:
    return float(np.random.default_rng(seed).standard_normal())


logits = st.one_of(st.floats(-40, 40), st.floats(-700, 700), st.floats(-1e-6, 1e-6),
                   st.integers(0, 2 ** 32 - 1).map(full_mantissa),
                   st.sampled_from([0.0, 650.0, -650.0, 651.0, np.inf, -np.inf, np.nan]))


@st.composite
def elements(draw):
    """(x, y, q, w, g): targets at sigmoid(x) rounded (the slope cancels), in [0, 1] or
    outside it; pos_weights, weights and upstream gradients, zero among them."""
    x = np.array(draw(st.lists(logits, min_size=1, max_size=12)))
    n = x.size
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    with np.errstate(over="ignore", invalid="ignore"):
        near = 1 / (1 + np.exp(-np.nan_to_num(x)))
    y = np.where(rng.random(n) < 0.4, near, rng.choice([0.0, 1.0, 0.3, -0.5, 1.5], n))
    q = rng.choice([1.0, 0.0, 2.5, 1 / 3], n)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        root = 1 + x / np.logaddexp(0, -x)  # y's slope (q - 1) softplus(-x) - x near 0
    q = np.where((rng.random(n) < 0.3) & np.isfinite(root) & (np.abs(root) < 1e300), root, q)
    w = rng.choice([1.0, 0.0, 0.7, 3.0], n)
    g = rng.choice([1.0, -2.0, 1e-3], n)
    return x, y, q, w, g


@settings(max_examples=80, deadline=None)
@given(elements(), st.sampled_from([0, 1, 2]), st.sampled_from([1, 3]))
def test_certified_elements_are_the_correctly_rounded_ones(case, what, count):
    x, y, q, w, g = case
    known = tier.elements(x, y, q, w, g, count, what)
    want = np.array([float(v) for v in oracle(x, y, q, w, g, count, what)])
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    left = ~np.isfinite(x) if what == 2 else ~(np.abs(x) <= 650)
    if what == 2:  # softplus(-x) for q other than 1
        left |= (q != 1) & ~(np.abs(x) <= 650)
    assert not known.ok[left & (w * g != 0)].any()
    plain = (np.abs(x) < 40) & (np.abs(x) > 1e-3) & (0 <= y) & (y <= 1)  # no cancellation
    if what == 0:  # (-x w g / count can be a tie, e.g. fl(1/3) 3: no tier certifies a tie)
        assert known.ok[plain].all()


@settings(max_examples=40, deadline=None)
@given(elements(), st.sampled_from([None, 7]))
def test_certified_totals_are_the_correctly_rounded_ones(case, divisor):
    x, y, q, w, _ = case
    known = tier.total(x, y, q, w, divisor)
    if known.ok:
        with mp.workprec(300):
            want = mp.fsum(oracle(x, y, q, w, np.ones(x.size), 1, 0)) / (divisor or 1)
            assert known.rounded == float(want)


def test_row_means_and_typical_batches_are_certified():
    """multilabel_soft_margin_loss's rows (the class mean of w times each term) and both
    losses' typical batches through the references: every output certified by this tier,
    the first ones equal to the oracle's."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 10)), (rng.random((64, 10)) < 0.3).astype(np.float64)
    w = rng.uniform(0.5, 2, 10)
    engine.STATS.clear()
    out = multilabel.multilabel_soft_margin_loss(x, y, w, "none", FLOAT64)
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == 64
    for i in range(4):
        with mp.workprec(300):
            want = mp.fsum(oracle(x[i], y[i], np.ones(10), w, np.ones(10), 10, 0))
        assert out.rounded[i] == float(want)
    engine.STATS.clear()
    grad = binary.binary_cross_entropy_with_logits_grad(np.array(1.0), x, y, None, None, "mean",
                                                        FLOAT64)["input"]
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == 2 * x.size  # input, target
    want = oracle(x[0], y[0], np.ones(10), np.ones(10), np.ones(10), x.size, 1)
    assert np.array_equal(grad.rounded[0], [float(v) for v in want])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 6), st.integers(0, 2 ** 32 - 1),
       st.sampled_from(["none", "mean", "sum"]))
def test_class_weight_slopes_are_the_correctly_rounded_ones(n, classes, seed, reduction):
    """multilabel_soft_margin_loss's class weight gradient, sum_n g_n t_nc / (C N'): upstream
    gradients of both signs ('none'), whose sums cancel (row 1 = row 0 with -g), logits past
    the tier's domain (left); every class certified where nothing cancels or leaves."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, classes)) * 3, (rng.random((n, classes)) < 0.4) * 1.0
    g = rng.uniform(0.5, 2, n) * rng.choice([-1.0, 1.0], n) if reduction == "none" else 0.75
    if reduction == "none" and n > 1:
        x[1], y[1], g[1] = x[0], y[0], -g[0]
    if rng.random() < 0.2:
        x[0, 0] = 700.0
    w = rng.uniform(0.5, 2, classes)
    grad = multilabel.multilabel_soft_margin_loss_grad(np.asarray(g), x, y, w, reduction,
                                                       FLOAT64)["weight"]
    upstream = np.broadcast_to(np.asarray(g, np.float64), (n,))
    divisor = classes * (n if reduction == "mean" else 1)
    with mp.workprec(300):
        terms = [oracle(x[:, c], y[:, c], np.ones(n), np.ones(n), upstream, divisor, 0)
                 for c in range(classes)]
        want = np.array([float(mp.fsum(t)) for t in terms])
    assert np.array_equal(grad.rounded, want)  # the tier's where certified, the engine's else
    known = tier.column_means(x, y, upstream[:, None], divisor)
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    plain = np.abs(x).max(axis=0) < 650
    if reduction != "none" or n == 1:
        assert known.ok[plain].all()


# --- binary_cross_entropy's slopes ---------------------------------------------------------------

def bce_oracle(p, y, clamp, w, g, count, wrt):
    """w g / count times (p - y) / max(p (1 - p), EPSILON) or log(1 - p) - log p, at 300
    bits, as mpf."""
    out = []
    with mp.workprec(300):
        for pi, yi, ci, wi, gi in zip(p, y, clamp, w, g):
            pi, yi = mpf(pi), mpf(yi)
            if wrt == "input":
                value = (pi - yi) / (mpf(binary.EPSILON) if ci else pi * (1 - pi))
            else:
                value = mp.log(1 - pi) - mp.log(pi)
            out.append(value * mpf(wi) * mpf(gi) / count)
    return out


probabilities = st.one_of(st.floats(0, 1), st.floats(0.5 - 1e-9, 0.5 + 1e-9),
                          st.floats(1e-300, 1e-11), st.floats(1 - 1e-9, 1),
                          st.integers(0, 2 ** 32 - 1).map(
                              lambda seed: float(np.random.default_rng(seed).random())),
                          st.sampled_from([0.0, 1.0, 0.5, 1e-12, np.nan]))


@settings(max_examples=80, deadline=None)
@given(st.lists(probabilities, min_size=1, max_size=12), st.integers(0, 2 ** 32 - 1),
       st.sampled_from(["input", "target"]), st.sampled_from([1, 3]))
def test_bce_slopes_certified_are_the_correctly_rounded_ones(p, seed, wrt, count):
    p = np.array(p)
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(p.size) < 0.3, p, rng.choice([0.0, 1.0, 0.25], p.size))
    clamp = binary.below_epsilon(np.nan_to_num(p)) & np.isfinite(p)
    w, g = rng.choice([1.0, 0.0, 0.7], p.size), rng.choice([1.0, -2.0], p.size)
    known = tier.bce_slopes(p, y, clamp, w, g, count, binary.EPSILON, wrt)
    inside = (0 < p) & (p < 1)
    want = np.zeros(p.size)
    want[inside] = [float(v) for v in bce_oracle(p[inside], y[inside], clamp[inside],
                                                 w[inside], g[inside], count, wrt)]
    assert np.array_equal(known.rounded[known.ok & inside], want[known.ok & inside])
    assert not known.ok[~inside & (w != 0)].any()
    domain = (2.0 ** -960 <= p) & (p < 1)  # the kernel's (for its logs)
    if wrt == "input" and domain.sum() >= 3:  # a relative bound: all certified but ties
        assert known.ok[domain].mean() > 0.9


def bce_loss_oracle(p, y, w):
    """-w (y max(log p, -100) + (1 - y) max(log(1 - p), -100)) at 300 bits, as mpf."""
    out = []
    with mp.workprec(300):
        for pi, yi, wi in zip(p, y, w):
            pi, yi = mpf(pi), mpf(yi)
            log_p = max(mp.log(pi), -100) if pi > 0 else mpf(-100)
            log_q = max(mp.log1p(-pi), -100) if pi < 1 else mpf(-100)
            out.append(-mpf(wi) * (yi * log_p + (1 - yi) * log_q))
    return out


edge_probabilities = st.one_of(probabilities, st.sampled_from(
    [binary.CLAMP_BELOW, np.nextafter(binary.CLAMP_BELOW, 1), 1e-44, 5e-324, 1 - 2.0 ** -53,
     2.0 ** -10, 1 - 2.0 ** -10, -0.25, 1.5]))


@settings(max_examples=80, deadline=None)
@given(st.lists(edge_probabilities, min_size=1, max_size=12), st.integers(0, 2 ** 32 - 1))
def test_bce_losses_certified_are_the_correctly_rounded_ones(p, seed):
    """binary_cross_entropy's terms: both logs clamped at -100 (p at and beside the clamp's
    boundary, p = 0, p = 1), targets in [0, 1] and outside it, zero weights; the totals too."""
    p = np.array(p)
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(p.size) < 0.3, p, rng.choice([0.0, 1.0, 0.25, 1.5, -0.5], p.size))
    w = rng.choice([1.0, 0.0, 0.7, 1e-300], p.size)
    known = tier.bce_loss(p, y, w, "none", binary.CLAMP_BELOW, binary.LOG_CLAMP)
    inside = (0 <= p) & (p <= 1)
    want = np.zeros(p.size)
    terms = bce_loss_oracle(p[inside], y[inside], w[inside])
    want[inside] = [float(v) for v in terms]
    assert np.array_equal(known.rounded[known.ok & inside], want[known.ok & inside])
    assert not known.ok[~inside & (w != 0)].any()
    dd, n = kernels(), p.size
    hi, lo, error, ok = np.empty(n), np.empty(n), np.empty(n), np.zeros(n, dtype=bool)
    dd.bce_losses(p, y, w, binary.CLAMP_BELOW, binary.LOG_CLAMP, 0.0, *dd.exp_constants(), hi,
                  lo, error, ok)
    with mp.workprec(300):  # each double-double within its bound of the exact term
        for i in np.flatnonzero(inside & np.isfinite(error)):
            assert abs(mpf(hi[i]) + mpf(lo[i]) - terms[int(inside[:i].sum())]) <= error[i]
    # no cancellation, no tie, and no term below the double-doubles' domain (2^-960): with
    # 0 < p < 2^-900, (1 - y) log1p(-p) is one, which leaves the element (hypothesis seed
    # 166 drew p = 1e-300)
    plain = (inside & (0 <= y) & (y <= 1) & (w == 1) & (p != y)
             & ~((0 < p) & (p < 2.0 ** -900)))
    if plain.sum() >= 3:
        assert known.ok[plain].mean() > 0.9
    for reduction, divisor in (("sum", 1), ("mean", p.size)):
        total = tier.bce_loss(p, y, w, reduction, binary.CLAMP_BELOW, binary.LOG_CLAMP)
        if total.ok:
            assert inside.all()
            with mp.workprec(300):
                assert total.rounded == float(mp.fsum(terms) / divisor)


def test_bce_loss_typical_batches_are_this_tiers():
    """binary_cross_entropy's values through the reference: every element and total of a
    typical batch certified by this tier, the correctly rounded ones."""
    rng = np.random.default_rng(1)
    p, y, w = rng.random(400), rng.random(400), rng.uniform(0.5, 2, 400)
    p[:3], y[:3] = [0.0, 1.0, 1e-50], [1.0, 0.0, 1.0]  # both clamps
    want = bce_loss_oracle(p, y, w)
    for reduction in ("none", "sum", "mean"):
        engine.STATS.clear()
        out = binary.binary_cross_entropy(p, y, w, reduction, FLOAT64)
        assert engine.STATS[TIER] == sum(engine.STATS.values())
        with mp.workprec(300):
            expect = ([float(v) for v in want] if reduction == "none"
                      else float(mp.fsum(want) / (400 if reduction == "mean" else 1)))
        assert np.array_equal(out.rounded, np.array(expect))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_soft_margin_loss_with_labels_of_one_is_this_tiers(reduction):
    """softplus(-y x) for y = +-1 is the logistic loss of the target (1 + y) / 2: values and
    the input's slope -y sigmoid(-y x) certified by this tier, the correctly rounded ones;
    labels other than +-1 (torch takes any) stay with the engine."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(300) * 4, rng.choice([-1.0, 1.0], 300)
    count = 300 if reduction == "mean" else 1
    engine.STATS.clear()
    value = pointwise.loss("soft_margin_loss", x, y, None, {}, reduction, FLOAT64)
    grads = pointwise.loss_grad("soft_margin_loss", np.array(0.5), x, y, None, {}, "mean",
                                FLOAT64)
    assert engine.STATS[TIER] == sum(engine.STATS.values())
    with mp.workprec(300):
        terms = [mp.log1p(mp.exp(-mpf(yi) * mpf(xi))) for xi, yi in zip(x, y)]
        want = ([float(t) for t in terms] if reduction == "none"
                else float(mp.fsum(terms) / count))
        slopes = [float(-mpf(yi) / (1 + mp.exp(mpf(yi) * mpf(xi))) * mpf(0.5) / 300)
                  for xi, yi in zip(x, y)]
    assert np.array_equal(value.rounded, np.array(want))
    assert np.array_equal(grads["input"].rounded, slopes)
    engine.STATS.clear()
    pointwise.loss("soft_margin_loss", x, np.where(y > 0, 0.5, -1.0), None, {}, reduction,
                   FLOAT64)
    assert engine.STATS[TIER] == 0
