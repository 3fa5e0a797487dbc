"""The elementwise double-double tier (loss_reference/elementwise_fast.py): what it certifies is
the correctly rounded (u - v) f g / count (exact rationals, Python's correctly rounded integer
division), over magnitudes from subnormal to huge, zeros, non-finite inputs (left), and it
certifies every ordinary element; through margin_ranking_loss's gradients, a typical batch is
this tier's whole.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from loss_reference import elementwise_fast as tier
from loss_reference import engine, margin
from loss_reference.compiled_kernels import TIER
from loss_reference.formats import FORMATS

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
