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

from loss_reference import engine, probabilistic
from loss_reference import probabilistic_fast as tier
from loss_reference.compiled_kernels import TIER
from loss_reference.formats import FORMATS

pytest.importorskip("numba", reason="numba is not installed")
FLOAT64 = FORMATS["float64"]
rates = st.one_of(st.floats(-3, 3), st.floats(-700, 700), st.sampled_from([-650.0, 680.0, 0.0]),
                  st.sampled_from([1e300, -1e300, np.inf, -np.inf, np.nan]))  # left


def oracle_terms(x, y, times_x, g, count):
    """g (exp(x) - y x) / count (``times_x``, else g (exp(x) - y) / count) per element, at 300
    bits, as mpf."""
    with mp.workprec(300):
        return [mpf(gq) * (mp.exp(mpf(xq)) - mpf(yq) * (mpf(xq) if times_x else 1)) / count
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
       st.sampled_from(["none", "sum", "mean"]))
def test_certified_losses_are_the_correctly_rounded_ones(x, seed, reduction):
    rng = np.random.default_rng(seed)
    x = np.array(x)
    y = draw_targets(rng, x)
    known = tier.poisson_loss(x, y, reduction, x.size)
    terms = oracle_terms(x, y, True, np.ones(x.size), 1)
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
