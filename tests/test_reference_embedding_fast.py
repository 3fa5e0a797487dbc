"""cosine_embedding_loss's float64 double-double tier (loss_reference/embedding_fast.py): the
elements it certifies are the correctly rounded gradient (an mpmath oracle at 300 bits), on
rows drawn to make float64 err (parallel rows, whose x_other - (P / A) x_self cancels, zeros,
scales from 1e-150 to 1e150), and it certifies a typical batch whole.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf

from loss_reference import embedding, engine
from loss_reference import embedding_fast as tier
from loss_reference.formats import FORMATS

pytest.importorskip("numba", reason="numba is not installed")
FLOAT64 = FORMATS["float64"]


def oracle(x1, x2, scale, count):
    """(n, D, 2): s (x_other - (P / A) x_self) / (sqrt(A B) count) per row, in mpmath."""
    n, D = x1.shape
    out = np.empty((n, D, 2))
    with mp.workprec(300):
        for i in range(n):
            a1, a2 = [mpf(v) for v in x1[i]], [mpf(v) for v in x2[i]]
            P = mp.fsum(u * v for u, v in zip(a1, a2))
            A = mp.fsum(u * u for u in a1) + mpf(embedding.EPS)
            B = mp.fsum(v * v for v in a2) + mpf(embedding.EPS)
            R = mp.sqrt(A * B) * count
            s = mpf(scale[i])
            for d in range(D):
                out[i, d, 0] = float(s * (a2[d] - P / A * a1[d]) / R)
                out[i, d, 1] = float(s * (a1[d] - P / B * a2[d]) / R)
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 9), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([1e-150, 1e-3, 1.0, 1e3, 1e150]), st.sampled_from([1, 3, 7]))
def test_certified_elements_are_the_correctly_rounded_gradient(n, D, seed, scale, count):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((n, D)) * scale, rng.standard_normal((n, D)) * scale
    x2[0] = x1[0] * rng.choice([1.0, -0.5, 3.0])  # parallel: the difference cancels
    x1[rng.random((n, D)) < 0.2] = 0.0
    s = rng.choice([-1.0, 0.0, 1.0], n) * rng.uniform(0.5, 2.0, n)
    known = tier.cosine_gradient(x1, x2, s, count, embedding.EPS)
    want = oracle(x1, x2, s, count)
    assert np.array_equal(known.rounded[known.ok], want[known.ok])
    # rows not drawn parallel are certified, not left (a row of one element is parallel, and
    # so, along its axis, is a row of zeros but one)
    plain = (x1 != 0).all(axis=1) & (D > 1)
    if 1e-3 <= scale <= 1e3:
        assert known.ok[1:][plain[1:]].all()


def test_a_typical_batch_is_certified_by_this_tier():
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((64, 32)), rng.standard_normal((64, 32))
    y = rng.choice([-1.0, 1.0], 64)
    engine.STATS.clear()
    out = embedding.cosine_loss_grad(np.array(1.0), x1, x2, y, 0.2, "mean", FLOAT64)
    assert engine.STATS[tier.TIER] == sum(engine.STATS.values()) == 64
    factor = -(y == 1).astype(np.float64) + embedding.cosine_active(x1, x2, y, 0.2)
    want = oracle(x1[:4], x2[:4], factor[:4], 64)
    assert np.array_equal(out["input1"].rounded[:4], want[..., 0])
    assert np.array_equal(out["input2"].rounded[:4], want[..., 1])
