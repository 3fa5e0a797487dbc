"""poisson_nll_loss's float64 double-double tier (loss_reference/probabilistic_fast.py): what it
certifies is the correctly rounded result (an mpmath oracle at 300 bits) on terms drawn to
cancel (y near exp(x) / x, y = exp(x) rounded for the gradient's exp(x) - y), log-rates over
the tier's whole domain and beyond it (non-finite ones too: they are left, and must not crash
the compiled kernel, which has no bounds checks), and it certifies typical batches whole, a
'mean' of more elements than arb takes included.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf

from loss_reference import engine, probabilistic, probabilistic_fast
from loss_reference import probabilistic_fast as tier
from loss_reference.compiled_kernels import TIER, kernels
from loss_reference.engine import ESTIMATE_ULPS
from loss_reference.formats import FORMATS

pytest.importorskip("numba", reason="numba is not installed")
FLOAT64 = FORMATS["float64"]
rates = st.one_of(st.floats(-3, 3), st.floats(-700, 700), st.sampled_from([-650.0, 680.0, 0.0]),
                  st.sampled_from([1e300, -1e300, np.inf, -np.inf, np.nan]))  # left


def oracle_terms(x, y, times_x, g, count, full=False):
    """g (exp(x) - y x) / count (``times_x``, else g (exp(x) - y) / count) per element, at 300
    bits, as mpf; ``full``: plus the Stirling term (y + 1/2) log y - y + log(2 pi) / 2 where
    y > 1."""
    def stirling(y):
        if not (full and y > 1):
            return mpf(0)
        return (y + mpf(0.5)) * mp.log(y) - y + mp.log(2 * mp.pi) / 2

    with mp.workprec(300):
        return [mpf(gq) * (mp.exp(mpf(xq)) - mpf(yq) * (mpf(xq) if times_x else 1)
                           + stirling(mpf(yq))) / count
                for xq, yq, gq in zip(x, y, g)]


def draw_targets(rng, x):
    """Counts at the rate exp(x), and targets that cancel: y x within an ulp of exp(x)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        y = rng.poisson(np.exp(np.clip(np.nan_to_num(x), -700, 5))).astype(np.float64)
        close = np.exp(x) / np.where(x == 0, 1.0, x)
    pick = rng.random(x.size) < 0.3
    return np.where(pick & np.isfinite(close), close, y)


@settings(max_examples=60, deadline=None)
@given(st.lists(rates, min_size=1, max_size=20), st.integers(0, 2 ** 32 - 1),
       st.sampled_from(["none", "sum", "mean"]), st.booleans())
def test_certified_losses_are_the_correctly_rounded_ones(x, seed, reduction, full):
    rng = np.random.default_rng(seed)
    x = np.array(x)
    y = draw_targets(rng, x)
    known = tier.poisson_loss(x, y, reduction, x.size, full)
    terms = oracle_terms(x, y, True, np.ones(x.size), 1, full)
    with mp.workprec(300):
        if reduction == "none":
            want = np.array([float(t) for t in terms])
            assert np.array_equal(known.rounded[known.ok], want[known.ok])
            with np.errstate(over="ignore", invalid="ignore"):
                typical = ((1e-3 < np.abs(x)) & (np.abs(x) < 600) & (y != 0)
                           & ~np.isclose(y * x, np.exp(x)))
            assert known.ok[typical].all()
        elif known.ok:
            total = mp.fsum(terms) / (x.size if reduction == "mean" else 1)
            assert known.rounded == float(total)


@settings(max_examples=60, deadline=None)
@given(st.lists(rates, min_size=1, max_size=20), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([1, 7]))
def test_certified_input_gradients_are_the_correctly_rounded_ones(x, seed, count):
    rng = np.random.default_rng(seed)
    x = np.array(x)
    with np.errstate(over="ignore"):
        y = np.where(rng.random(x.size) < 0.3, np.exp(x), draw_targets(rng, x))
    g = rng.uniform(-2, 2, x.size)
    known = tier.poisson_input_gradient(x, y, g, count)
    want = np.array([float(t) for t in oracle_terms(x, y, False, g, count)])
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    assert not known.ok[~((-650 <= x) & (x <= 680))].any()


def test_a_typical_batch_and_its_mean_beyond_arbs_reach_are_certified():
    """Log-rates N(0,1) and counts drawn from them: every term certified by this tier, and a
    'mean' over more elements than arb takes (2^21), which no other tier certified (it agrees
    with float64's mean to float64's accuracy)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000)
    y = rng.poisson(np.exp(x)).astype(np.float64)
    engine.STATS.clear()
    out = probabilistic.poisson_nll_loss(x, y, True, False, 1e-8, "none", FLOAT64)
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == x.size
    want = [float(t) for t in oracle_terms(x[:50], y[:50], True, np.ones(50), 1)]
    assert np.array_equal(out.rounded[:50], want)
    big = rng.standard_normal((1 << 21) + 1)
    counts = rng.poisson(np.exp(big)).astype(np.float64)
    mean = probabilistic.poisson_nll_loss(big, counts, True, False, 1e-8, "mean", FLOAT64)
    assert abs(float(mean.rounded) - np.mean(np.exp(big) - counts * big)) < 1e-12


def test_the_stirling_terms_of_a_typical_batch_are_certified():
    """full: counts up to a few hundred take the Stirling term, in this tier too (it fell to
    arb for 13 % of the speed ladder's float64 terms); the input's slope does not change."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(2000) * 2
    y = rng.poisson(np.exp(x)).astype(np.float64)
    engine.STATS.clear()
    out = probabilistic.poisson_nll_loss(x, y, True, True, 1e-8, "none", FLOAT64)
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == x.size
    want = [float(t) for t in oracle_terms(x[:200], y[:200], True, np.ones(200), 1, True)]
    assert np.array_equal(out.rounded[:200], want)
    engine.STATS.clear()
    grads = probabilistic.poisson_nll_loss_grad(np.array(1.0), x, y, True, True, 1e-8, "sum",
                                                FLOAT64)
    assert engine.STATS[TIER] == sum(engine.STATS.values()) == 2 * x.size  # both slopes
    assert np.array_equal(grads["input"].rounded[:50], [
        float(t) for t in oracle_terms(x[:50], y[:50], False, np.ones(50), 1)])
    assert np.array_equal(grads["target"].rounded[:200],
                          oracle_target_slopes(x[:200], y[:200], True, np.ones(200), 1))


def oracle_target_slopes(x, y, full, g, count):
    """g (-x + [full, y > 1] (log y + 1 / (2 y))) / count per element, at 300 bits, rounded."""
    with mp.workprec(300):
        out = []
        for xq, yq, gq in zip(x, y, g):
            slope = -mpf(xq)
            if full and yq > 1:
                slope += mp.log(mpf(yq)) + 1 / (2 * mpf(yq))
            out.append(float(mpf(gq) * slope / count))
    return np.array(out)


@settings(max_examples=60, deadline=None)
@given(st.lists(rates, min_size=1, max_size=20), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([1, 7]), st.booleans())
def test_certified_target_gradients_are_the_correctly_rounded_ones(x, seed, count, full):
    """Targets drawn at the rate exp(x), and x = log y rounded, where the Stirling slope
    log y + 1 / (2 y) - x cancels."""
    rng = np.random.default_rng(seed)
    x = np.array(x)
    y = draw_targets(rng, x)
    near = (rng.random(x.size) < 0.4) & (y > 1) & np.isfinite(y)
    x = np.where(near, np.log(np.where(near, y, 1.0)), x)
    g = rng.uniform(-2, 2, x.size)
    known = tier.poisson_target_gradient(x, y, full, g, count)
    want = oracle_target_slopes(x, y, full, g, count)
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    # a typical Stirling slope is certified (-x g alone may be an exact tie of float64: its
    # certificate is the engine's exact ball)
    typical = (full & (y > 1) & (y < 2.0 ** 900) & ~near & (np.abs(x) < 1e300)
               & (np.abs(want) > 1e-300))
    assert known.ok[typical].all()


# --- kl_div --------------------------------------------------------------------------------------

def kl_oracle(x, t, log_target, what, g, count):
    """g / count times kl_div's term (what 0), its input slope (1) or target slope (2), per
    element at 300 bits, as mpf (a zero target's term 0; its slopes are left to the specials)."""
    out = []
    with mp.workprec(300):
        for xq, tq, gq in zip(x, t, g):
            xq, tq = mpf(xq), mpf(tq)
            if log_target:
                f = mp.exp(tq)
                value = [f * (tq - xq), -f, f * (tq - xq + 1)][what]
            elif tq == 0:
                value = mpf(0)
            else:
                value = [tq * (mp.log(tq) - xq), -tq, mp.log(tq) + 1 - xq][what]
            out.append(value * mpf(gq) / count)
    return out


def full_mantissas(low, high):
    """Floats whose every bit counts (hypothesis favours short ones, whose sums are exact)."""
    return st.integers(0, 2 ** 32 - 1).map(
        lambda seed: float(np.random.default_rng(seed).uniform(low, high)))


probabilities = st.one_of(st.floats(0, 1), st.floats(1 - 2 ** -9, 1 + 2 ** -9),
                          st.floats(1e-300, 1e-3), st.sampled_from([0.0, 1.0, 0.5, 2.0]),
                          full_mantissas(0, 1))
log_probabilities = st.one_of(st.floats(-700, 700), full_mantissas(-650, 680))


@st.composite
def kl_cases(draw):
    """(x, t, log_target): inputs near log t (or t itself), where the terms cancel, and
    elsewhere, with non-finite inputs the tier leaves."""
    log_target = draw(st.booleans())
    t = np.array(draw(st.lists(log_probabilities if log_target else probabilities,
                               min_size=1, max_size=12)))
    with np.errstate(divide="ignore", invalid="ignore"):
        near = t if log_target else np.log(t)
        shift = np.array(draw(st.lists(st.sampled_from([0.0, 1e-15, -1e-9, 3.0]),
                                       min_size=t.size, max_size=t.size)))
        x = np.where(np.isfinite(near), near + shift * np.abs(near), -1.0)
    x[draw(st.integers(0, t.size - 1))] = draw(st.sampled_from([-np.inf, np.nan, 0.25]))
    return x, t, log_target


@settings(max_examples=80, deadline=None)
@given(kl_cases(), st.sampled_from([0, 1, 2]), st.sampled_from([1, 3]), st.integers(0, 9))
def test_kl_div_certified_results_are_the_correctly_rounded_ones(case, what, count, seed):
    x, t, log_target = case
    g = np.random.default_rng(seed).uniform(-2, 2, x.size) if what else np.ones(x.size)
    if what == 0:
        known = tier.kl_div_loss(x, t, log_target, "none", 1)
        count = 1
    else:
        known = tier.kl_div_gradient(x, t, log_target, ("input", "target")[what - 1], g, count)
    want = np.array([float(v) for v in kl_oracle(x, t, log_target, what, g, count)])
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    zero_target = np.isneginf(t) if log_target else t == 0
    left = ~np.isfinite(x) & ~(zero_target & (what == 0))  # a zero target's term is 0
    assert not known.ok[left].any()


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.floats(2.0 ** -960, 2.0 ** 900), st.floats(0.99, 1.01),
                 st.floats(1 - 2 ** -10, 1 + 2 ** -10), st.floats(1e-6, 1e6),
                 st.sampled_from([1 + 2 ** -40, 1 - 2 ** -45, 1 + 2 ** -20, 0.5, 2.0 ** -960])))
def test_log_dd_is_within_its_bound(x):
    """Newton's step below 1 (exp of positive arguments) and above, the series near 1: with
    Newton alone there, the bound, absolute, would be wider than log x itself."""
    from loss_reference.double_double import exp_constants, log_dd

    y_hi, y_lo, error = log_dd(x, 0.0, 0.0, *exp_constants())
    with mp.workprec(300):
        want = mp.log(mpf(x))
        assert abs(mpf(y_hi) + mpf(y_lo) - want) <= error
    # far inside the 2^-59 that certifying a float64 needs (Newton's bound is absolute)
    assert error <= 2.0 ** -80 * max(abs(float(want)), 2.0 ** -1000) or x == 1.0


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("what", [0, 1, 2])
def test_kl_div_spread_of_full_mantissas(log_target, what):
    """Hundreds of elements whose every bit counts, inputs at several distances from log t:
    the certified ones are the correctly rounded ones, and nearly all are certified (a
    difference t - x rounded before the product errs here in 5 % of the elements)."""
    rng = np.random.default_rng(what + 3 * log_target)
    t = rng.uniform(-650, 680, 300) if log_target else rng.uniform(0, 1, 300)
    near = t if log_target else np.log(t)
    # (within 1e-12 of log t, 40 bits cancel: Newton's absolute bound on log t leaves a third)
    x = near + rng.choice([1e-6, -0.5, 3.0], 300) * np.abs(near)
    g = rng.uniform(-2, 2, 300)
    if what == 0:
        known, g = tier.kl_div_loss(x, t, log_target, "none", 1), np.ones(300)
    else:
        known = tier.kl_div_gradient(x, t, log_target, ("input", "target")[what - 1], g, 3)
    want = np.array([float(v) for v in kl_oracle(x, t, log_target, what, g, 1 if what == 0
                                                  else 3)])
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    assert known.ok.mean() > 0.98


# --- gaussian_nll_loss --------------------------------------------------------------------------

def gaussian_oracle(x, y, v, full):
    """(log v + (x - y)^2 / v) / 2 (+ log(2 pi) / 2 with full) per element at 300 bits."""
    with mp.workprec(300):
        return [(mp.log(mpf(vi)) + (mpf(xi) - mpf(yi)) ** 2 / mpf(vi)
                 + (mp.log(2 * mp.pi) if full else 0)) / 2 for xi, yi, vi in zip(x, y, v)]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_gaussian_terms_certified_are_the_correctly_rounded_ones(n, seed, full):
    """Terms that cancel (v below 1, (x - y)^2 / v near -log v, or -log(2 pi v) with full),
    variances from 1e-300 to 1e300, v = 1 and zero residuals (exactly 0 without full),
    residuals whose square leaves the domain; each double-double within its bound, the totals
    the correctly rounded ones."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    v = rng.choice([1e-300, 1e-3, 0.05, 0.7, 1.0, 2.0, 1e300], n)
    near = rng.random(n) < 0.5
    shift = np.log(2 * np.pi) if full else 0.0
    with np.errstate(invalid="ignore"):
        r = np.sqrt(-v * (np.log(v) + shift))  # the term within an ulp or so of 0
    x = np.where(near & np.isfinite(r), y + r, x)
    y[rng.random(n) < 0.1] = x[0]
    x[rng.random(n) < 0.05] = 1e250  # the square beyond the domain
    dd, terms = kernels(), gaussian_oracle(x, y, v, full)
    hi, lo, error, ok = np.empty(n), np.empty(n), np.empty(n), np.zeros(n, dtype=bool)
    dd.gaussian_terms(x, y, v, np.ones(n), 1.0, 0, full, ESTIMATE_ULPS, *dd.exp_constants(),
                      hi, lo, error, ok)
    with mp.workprec(300):
        for i in np.flatnonzero(np.isfinite(error)):
            assert abs(mpf(hi[i]) + mpf(lo[i]) - terms[i]) <= error[i]
    want = np.array([float(t) for t in terms])
    known = probabilistic_fast.gaussian_loss(x, y, v, "none", 1, full)
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    assert not known.ok[np.abs(x) > 1e200].any()
    for reduction, count in (("sum", 1), ("mean", n)):
        total = probabilistic_fast.gaussian_loss(x, y, v, reduction, count, full)
        if total.ok:
            with mp.workprec(300):
                assert total.rounded == float(mp.fsum(terms) / count)


@pytest.mark.parametrize("full", [False, True])
def test_gaussian_terms_of_a_typical_batch_are_this_tiers(full):
    """A batch like the speed ladder's through the reference: every term and total certified
    by this tier, the correctly rounded ones."""
    rng = np.random.default_rng(2)
    x, y, v = rng.standard_normal(300), rng.standard_normal(300), rng.uniform(0.1, 2, 300)
    want = gaussian_oracle(x, y, v, full)
    for reduction in ("none", "sum", "mean"):
        engine.STATS.clear()
        out = probabilistic.gaussian_nll_loss(x, y, v, full, 1e-6, reduction, FLOAT64)
        assert engine.STATS[TIER] == sum(engine.STATS.values())
        with mp.workprec(300):
            expect = ([float(t) for t in want] if reduction == "none"
                      else float(mp.fsum(want) / (300 if reduction == "mean" else 1)))
        assert np.array_equal(out.rounded, np.array(expect))


# --- gaussian_nll_loss's gradients -------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2 ** 32 - 1), st.sampled_from(["input", "var"]),
       st.sampled_from([1, 3]))
def test_gaussian_slopes_certified_are_the_correctly_rounded_ones(n, seed, wrt, count):
    """Residuals whose square is the variance rounded (1 - r^2 / v cancels), variances from
    1e-300 to 1e300, zero residuals and upstream gradients."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    v = rng.choice([1e-300, 1e-3, 0.7, 2.0, 1e300], n)
    near = rng.random(n) < 0.4
    v = np.where(near, (x - y) ** 2, v)  # r^2 / v within an ulp of 1
    y[rng.random(n) < 0.1] = x[0]
    g = rng.choice([1.0, -0.5, 0.0], n)
    known = probabilistic_fast.gaussian_gradient(x, y, v, g, count, wrt)
    with mp.workprec(300):
        want = []
        for xi, yi, vi, gi in zip(x, y, v, g):
            r, vi = mpf(xi) - mpf(yi), mpf(vi)
            slope = r / vi if wrt == "input" else (1 - r * r / vi) / (2 * vi)
            want.append(float(slope * mpf(gi) / count))
    assert np.array_equal(known.rounded[known.ok], np.array(want)[known.ok])
    # (x - y) / 2 can be a tie of float64 (x - y, exact, may need a 54th bit): no bound
    # certifies a tie, arb does
    ordinary = np.isin(v, [1e-3, 0.7]) & ~near
    assert known.ok[ordinary].all() or wrt == "var"


def test_gaussian_input_slopes_below_the_domain_are_left():
    """(x - y) / v with x - y = -5e-324 (subnormal: the quotient's relative bound fails, and
    it came out 0, certified) or a quotient of 2^-1060 (totality test, seed 75): what is
    certified is the correctly rounded value; the rest is left to the engine."""
    x, y = np.array([0.0, 2.0 ** -960, 1.0]), np.array([5e-324, 0.0, 0.25])
    v, g = np.array([1.5, 2.0 ** 100, 1.5]), np.ones(3)
    known = probabilistic_fast.gaussian_gradient(x, y, v, g, 1, "input")
    with mp.workprec(300):
        want = np.array([float((mpf(a) - mpf(b)) / mpf(c)) for a, b, c in zip(x, y, v)])
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    assert known.ok[2]
