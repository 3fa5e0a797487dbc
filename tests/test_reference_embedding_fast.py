"""The embedding losses' float64 double-double tiers (loss_reference/embedding_fast.py): what
they certify is the correctly rounded result (mpmath oracles at 300 bits), on rows drawn to make
float64 err, and they certify a typical batch whole.

- cosine_embedding_loss's gradient: parallel rows, whose x_other - (P / A) x_self cancels,
  zeros, scales from 1e-150 to 1e150;
- the triplet losses (pairwise distance, p = 1 and 2): hinges that cancel (d(a, p) = d(a, n) up to
  a few ulps), swap's min at a tie and off it, zero distances (a = 0, b = eps), scales from 1e-100
  to 1e100; the loss per row, its total, the three gradients.
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


# --- triplet losses ------------------------------------------------------------------------------

def swap_weights(ds, swap: bool):
    """(the weights of d(a, n) and d(p, n) in the hinge, whether they tie exactly): under swap
    the smaller one's (a tie splits evenly, as torch's min does), else d(a, n)'s alone."""
    if not swap:
        return [mpf(1), mpf(0)], False
    if ds[1] == ds[2]:
        return [mpf(0.5)] * 2, True
    return ([mpf(1), mpf(0)] if ds[1] < ds[2] else [mpf(0), mpf(1)]), False


def triplet_oracle(a, p_, n_, eps, margin, swap, g, count, norm=2.0):
    """(hinges per row, d loss / d (a, p, n) stacked (n, D, 3) for the upstream gradients g
    per row over ``count``, whether swap's distances tie exactly), in mpmath, under the
    ``norm``-norm distance (1 or 2): an exactly zero hinge is inactive, a tie in swap's min
    splits evenly, and the slope at 0 is 0 (torch's sides)."""
    n, D = a.shape
    hinges, grad, tie = [], np.zeros((n, D, 3)), np.zeros(n, dtype=bool)
    with mp.workprec(300):
        for i in range(n):
            rows = [[mpf(x) for x in r[i]] for r in (a, p_, n_)]
            vs = [[u - v + mpf(eps) for u, v in zip(rows[j], rows[k])]
                  for j, k in ((0, 1), (0, 2), (1, 2))]
            ds = [mp.sqrt(mp.fsum(x * x for x in v)) if norm == 2.0 else
                  mp.fsum(abs(x) for x in v) for v in vs]
            take, tie[i] = swap_weights(ds, swap)
            hinge = mpf(margin) + ds[0] - (take[0] * ds[1] + take[1] * ds[2])
            hinges.append(hinge)
            if hinge <= 0:
                continue
            s = mpf(g[i]) / count
            for d in range(D):
                w = [(v[d] / dist if norm == 2.0 else mp.sign(v[d])) if dist != 0 else mpf(0)
                     for v, dist in zip(vs, ds)]
                grad[i, d] = [float(s * (w[0] - take[0] * w[1])),
                              float(s * (-w[0] - take[1] * w[2])),
                              float(s * (take[0] * w[1] + take[1] * w[2]))]
    return hinges, grad, tie


def triplet_batch(rng, n, D, scale):
    """Rows drawn to cancel: row 0's hinge at margin 0 within ulps of 0 (n = a permutation of
    p about a), row 1 a swap tie (p = a), row 2 a zero distance (a = 0, p = eps); row 3 has
    one difference exactly 0 (p = 1's slope there is torch's sign(0) = 0)."""
    a, p_, n_ = (rng.standard_normal((n, D)) * scale for _ in range(3))
    p_[0] = a[0] + rng.standard_normal(D) * scale
    n_[0] = a[0] + np.roll(p_[0] - a[0], 1)
    if n > 1:
        p_[1] = a[1]
    if n > 2:
        a[2], p_[2] = 0.0, 1e-6  # a - p + eps = 0 exactly
    if n > 3:
        a[3, 0], p_[3, 0] = 0.0, 1e-6
    return a, p_, n_


def assert_triplet_results(triple, rows, oracle_results, g, count: int, swap: bool):
    """The tier's triplet rows (``tier.triplet_rows``) against an oracle's (hinges, gradients,
    swap's exact ties): certified losses and the total the correctly rounded ones, decided
    signs the true ones; then the gradients under those decisions, certified where the
    decisions are the oracle's. Returns the gradients' Known."""
    hinges, grad, tie = oracle_results
    with mp.workprec(300):
        losses = [max(h, mpf(0)) for h in hinges]
        want = np.array([float(x) for x in losses])
        assert np.array_equal(rows.hi[rows.ok], want[rows.ok])
        total = tier.triplet_loss(rows, "sum")
        if total.ok:
            assert total.rounded == float(mp.fsum(losses))
        # a decided sign is the true one; an exactly zero hinge is decided by none
        signs = np.array([float(mp.sign(h)) for h in hinges])
    assert np.all((rows.hinge == 0) | (rows.hinge == signs))
    n = len(hinges)
    take_neg, take_swap = np.ones(n), np.zeros(n)
    if swap:
        take_neg = np.where(rows.order > 0, 0.0, np.where(rows.order < 0, 1.0, 0.5))
        take_swap = 1 - take_neg
    scale = g * (rows.hinge > 0)
    known = tier.triplet_gradient(*triple, rows, 1e-6, scale, take_neg, take_swap, count)
    # rows whose decisions are the oracle's: the hinge decided, and swap's order decided or an
    # exact tie (which no ball decides)
    same = known.ok & (rows.hinge != 0) & (~np.array(swap) | (rows.order != 0) | tie)
    assert np.array_equal(known.rounded[same], grad[same])
    return known


def _is_float64_tie(value) -> bool:
    """Whether an mpmath number lies exactly halfway between two float64 numbers."""
    nearest = float(value)
    other = float(np.nextafter(nearest, np.inf if value > nearest else -np.inf))
    return value != nearest and 2 * value == mpf(nearest) + mpf(other)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([1e-100, 1e-3, 1.0, 1e3, 1e100]), st.sampled_from([0.0, 1.0]),
       st.booleans(), st.sampled_from([1, 3]), st.sampled_from([1.0, 2.0]))
def test_triplet_certified_results_are_the_correctly_rounded_ones(n, D, seed, scale, margin,
                                                                   swap, count, norm):
    rng = np.random.default_rng(seed)
    a, p_, n_ = triplet_batch(rng, n, D, scale)
    g = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    rows = tier.triplet_rows(a, p_, n_, 1e-6, margin, swap, norm)
    oracle_results = triplet_oracle(a, p_, n_, 1e-6, margin, swap, g, count, norm)
    known = assert_triplet_results((a, p_, n_), rows, oracle_results, g, count, swap)
    # rows not drawn to cancel: all certified (but for D = 1, where both unit vectors are +-1
    # and the anchor's gradient is exactly 0 or +-2: a bound, not 0, leaves the 0 to the
    # engine; and a hinge exactly halfway between two float64 numbers, which an L1 distance
    # of float64 inputs often is, and which only an exact ball decides: hypothesis drew
    # 1.991021761125893 + half an ulp)
    if 1e-3 <= scale <= 1e3 and margin == 1.0 and D > 1:
        with mp.workprec(300):
            ties = np.array([_is_float64_tie(h) for h in oracle_results[0]])
        assert known.ok[3:].all() and rows.ok[3:][~ties[3:]].all()


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2 ** 32 - 1), st.booleans(),
       st.sampled_from(["none", "sum"]), st.sampled_from([1.0, 2.0]))
def test_triplet_values_with_the_engine_completing_them(n, D, seed, swap, reduction, norm):
    """Rows the tier leaves (hinges at the kink) go to the engine; the values, which do not
    depend on any decision, are the correctly rounded ones everywhere."""
    rng = np.random.default_rng(seed)
    a, p_, n_ = triplet_batch(rng, n, D, 1.0)
    options = {"margin": 0.0, "swap": swap, "p": norm}
    out = embedding.triplet_loss(a, p_, n_, options, reduction, FLOAT64)
    hinges = triplet_oracle(a, p_, n_, 1e-6, 0.0, swap, np.ones(n), 1, norm)[0]
    with mp.workprec(300):
        losses = [max(h, mpf(0)) for h in hinges]
        want = [float(x) for x in losses] if reduction == "none" else float(mp.fsum(losses))
    assert np.array_equal(out.rounded, np.array(want))


@pytest.mark.parametrize("norm", [1.0, 2.0])
def test_a_typical_triplet_batch_is_certified_by_this_tier(norm):
    rng = np.random.default_rng(0)
    a, p_, n_ = (rng.standard_normal((64, 32)) for _ in range(3))
    engine.STATS.clear()
    out = embedding.triplet_loss_grad(np.array(1.0), a, p_, n_, {"swap": True, "p": norm},
                                      "mean", FLOAT64)
    assert engine.STATS[tier.TIER] == sum(engine.STATS.values()) == 64
    engine.STATS.clear()
    value = embedding.triplet_loss(a, p_, n_, {"swap": True, "p": norm}, "mean", FLOAT64)
    assert engine.STATS[tier.TIER] == sum(engine.STATS.values()) == 1
    hinges, want, _ = triplet_oracle(a, p_, n_, 1e-6, 1.0, True, np.ones(64), 64, norm)
    with mp.workprec(300):
        assert value.rounded == float(mp.fsum(max(h, mpf(0)) for h in hinges) / 64)
    hinges, want = hinges[:8], want[:8]
    assert any(h > 0 for h in hinges) and any(h < 0 for h in hinges)
    for k, name in enumerate(("anchor", "positive", "negative")):
        assert np.array_equal(out[name].rounded[:8], want[..., k])


# --- cosine_embedding_loss's values --------------------------------------------------------------

def cosine_triplet_oracle(a, p_, n_, margin, swap, g, count):
    """``triplet_oracle`` under the cosine distance d(u, v) = 1 - u . v / (|u| |v|) (no norm
    near 1e-8): (hinges, gradients (n, D, 3), swap's exact ties)."""
    n, D = a.shape
    hinges, grad, tie = [], np.zeros((n, D, 3)), np.zeros(n, dtype=bool)
    with mp.workprec(300):
        for i in range(n):
            rows = [[mpf(x) for x in r[i]] for r in (a, p_, n_)]
            pairs = [(rows[j], rows[k]) for j, k in ((0, 1), (0, 2), (1, 2))]
            norms = [mp.sqrt(mp.fsum(x * x for x in r)) for r in rows]
            index = ((0, 1), (0, 2), (1, 2))
            dots = [mp.fsum(x * y for x, y in zip(u, v)) for u, v in pairs]
            ds = [1 - P / (norms[j] * norms[k]) for P, (j, k) in zip(dots, index)]
            take, tie[i] = swap_weights(ds, swap)
            hinge = mpf(margin) + ds[0] - (take[0] * ds[1] + take[1] * ds[2])
            hinges.append(hinge)
            if hinge <= 0:
                continue
            s = mpf(g[i]) / count

            def slope(k, which, d):  # d/du (which 0) or d/dv (1) of d(u, v), pair k
                (u, v), (j, m) = pairs[k], index[k]
                own, other = (u, v) if which == 0 else (v, u)
                A = norms[j if which == 0 else m] ** 2
                return -(other[d] - dots[k] / A * own[d]) / (norms[j] * norms[m])

            for d in range(D):
                grad[i, d] = [float(s * (slope(0, 0, d) - take[0] * slope(1, 0, d))),
                              float(s * (slope(0, 1, d) - take[1] * slope(2, 0, d))),
                              float(-s * (take[0] * slope(1, 1, d) + take[1] * slope(2, 1, d)))]
    return hinges, grad, tie


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(2, 9), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([1e-100, 1e-3, 1.0, 1e3, 1e100]), st.sampled_from([0.0, 0.5]),
       st.booleans(), st.sampled_from([1, 3]))
def test_cosine_triplet_certified_results_are_the_correctly_rounded_ones(n, D, seed, scale,
                                                                          margin, swap, count):
    """The cosine distance (triplet_margin_with_distance_loss's Distance('cosine')): row 0's
    hinge at margin 0 exactly 0 (n = 3 p: undecided, left), row 1 a zero distance (p = a:
    left), row 2 nearly parallel pairs (1 - cos cancels), a norm at the clamp (1e-8: left to
    the engine) in row 3, p and n both nearly parallel to a in row 4."""
    rng = np.random.default_rng(seed)
    a, p_, n_ = (rng.standard_normal((n, D)) * scale for _ in range(3))
    n_[0] = p_[0] * 3.0  # the same direction: d(a, n) = d(a, p) exactly
    if n > 1:
        p_[1] = a[1]
    if n > 2:
        p_[2] = a[2] * (1 + rng.standard_normal(D) * 1e-9)
    if n > 3:
        n_[3] = n_[3] / np.linalg.norm(n_[3]) * 1e-8
    if n > 4:  # both nearly parallel to a: the hinge at margin 0 a difference of two such
        p_[4], n_[4] = (a[4] * (1 + rng.standard_normal(D) * 1e-9) for _ in range(2))
    g = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    rows = tier.triplet_rows(a, p_, n_, 1e-6, margin, swap, 2.0, "cosine")
    known = assert_triplet_results(
        (a, p_, n_), rows, cosine_triplet_oracle(a, p_, n_, margin, swap, g, count), g, count,
        swap)
    if n > 3:
        assert not rows.ok[3] and rows.hinge[3] == 0  # the clamp's row: the engine's
    if 1e-3 <= scale <= 1e3 and margin == 0.5:  # rows not drawn to cancel: all certified
        assert known.ok[5:].all() and rows.ok[5:].all()


def test_a_typical_cosine_triplet_batch_is_certified_by_this_tier():
    rng = np.random.default_rng(5)
    a, p_, n_ = (rng.standard_normal((64, 32)) for _ in range(3))
    options = {"swap": True, "distance": "cosine", "margin": 0.05}
    engine.STATS.clear()
    out = embedding.triplet_loss_grad(np.array(1.0), a, p_, n_, options, "mean", FLOAT64)
    assert engine.STATS[tier.TIER] == sum(engine.STATS.values()) == 64
    engine.STATS.clear()
    value = embedding.triplet_loss(a, p_, n_, options, "mean", FLOAT64)
    assert engine.STATS[tier.TIER] == sum(engine.STATS.values()) == 1
    hinges, want, _ = cosine_triplet_oracle(a, p_, n_, 0.05, True, np.ones(64), 64)
    with mp.workprec(300):
        assert value.rounded == float(mp.fsum(max(h, mpf(0)) for h in hinges) / 64)
    assert any(h > 0 for h in hinges[:8]) and any(h < 0 for h in hinges[:8])
    for k, name in enumerate(("anchor", "positive", "negative")):
        assert np.array_equal(out[name].rounded[:8], want[:8, :, k])


def test_a_cosine_triplet_row_with_a_zero_vector_is_left_not_raised():
    """A zero row has norm 0, where torch's cosine_similarity clamps it: the tier leaves the
    row (its distances and gradient) to the engine, for the value and the gradient alike;
    its quotients used to divide by that 0, which numba raises (ZeroDivisionError; the
    totality test's seed 169 drew anchor [1], positive [1], negative [0])."""
    a, p_ = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 1.0]])
    n_ = np.array([[0.0, 0.0], [-1.0, 1.0]])
    rows = tier.triplet_rows(a, p_, n_, 1e-6, 1.0, False, 2.0, "cosine")
    assert np.isposinf(rows.d_error[1, 0]) and np.isfinite(rows.d_error[:2, 1]).all()
    options = {"swap": False, "distance": "cosine", "margin": 1.0}
    value = embedding.triplet_loss(a, p_, n_, options, "none", FLOAT64)
    grads = embedding.triplet_loss_grad(np.ones(2), a, p_, n_, options, "none", FLOAT64)
    # d(a, p) = 1 - 1/sqrt 2; d(a, 0) = 1 (cos 0 under the clamp), d(a, n) = 1 + 1/sqrt 2
    with mp.workprec(300):
        assert value.rounded.tolist() == [float(1 - 1 / mp.sqrt(2)), 0.0]
    assert all(np.isfinite(g.rounded).all() for g in grads.values())


def cosine_loss_oracle(x1, x2, y, margin):
    """(losses per row, cos - margin per row) in mpmath at 300 bits: 1 - cos for y = 1,
    max(0, cos - margin) for y = -1, 0 otherwise."""
    losses, hinges = [], []
    with mp.workprec(300):
        for i in range(x1.shape[0]):
            a1, a2 = [mpf(v) for v in x1[i]], [mpf(v) for v in x2[i]]
            P = mp.fsum(u * v for u, v in zip(a1, a2))
            A = mp.fsum(u * u for u in a1) + mpf(embedding.EPS)
            B = mp.fsum(v * v for v in a2) + mpf(embedding.EPS)
            cos = P / mp.sqrt(A * B)
            hinges.append(cos - mpf(margin))
            losses.append(1 - cos if y[i] == 1 else max(cos - mpf(margin), 0) if y[i] == -1
                          else mpf(0))
    return losses, hinges


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([1e-150, 1e-3, 1.0, 1e3, 1e150]), st.sampled_from([0.0, 0.5, -0.3]),
       st.sampled_from(["none", "sum", "mean"]))
def test_cosine_certified_losses_are_the_correctly_rounded_ones(n, D, seed, scale, margin,
                                                                reduction):
    """Parallel rows (1 - cos cancels: cos = 1, or -1), orthogonal ones (cos = 0, at margin 0's
    kink), y of 1, -1 and 0; decided hinge signs are the true ones, and none at a kink."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal((n, D)) * scale, rng.standard_normal((n, D)) * scale
    x2[0] = x1[0] * rng.choice([1.0, 2.0, -1.0])  # cos = +-1
    if n > 1 and D > 1:  # orthogonal: cos = 0 exactly, the kink of margin 0
        x1[1], x2[1] = 0.0, 0.0
        x1[1, 0], x2[1, 1] = scale, -scale
    y = rng.choice([1.0, -1.0, 0.0], n)
    known, signs = tier.cosine_loss(x1, x2, y, margin, embedding.EPS, reduction)
    losses, hinges = cosine_loss_oracle(x1, x2, y, margin)
    with mp.workprec(300):
        truth = np.array([float(mp.sign(h)) for h in hinges])
        if reduction == "none":
            want = np.array([float(v) for v in losses])
            assert np.array_equal(known.rounded[known.ok], want[known.ok])
        elif known.ok:
            total = mp.fsum(losses) / (n if reduction == "mean" else 1)
            assert known.rounded == float(total)
    assert np.all((signs == 0) | (signs == truth))


def test_cosine_values_of_a_typical_batch_are_this_tiers():
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal((64, 32)), rng.standard_normal((64, 32))
    y = rng.choice([-1.0, 1.0], 64)
    engine.STATS.clear()
    out = embedding.cosine_loss(x1, x2, y, 0.1, "none", FLOAT64)
    assert engine.STATS[tier.TIER] == sum(engine.STATS.values()) == 64
    with mp.workprec(300):
        want = [float(v) for v in cosine_loss_oracle(x1[:8], x2[:8], y[:8], 0.1)[0]]
    assert np.array_equal(out.rounded[:8], want)


@pytest.mark.parametrize("tiny", [2.78e-321, 5e-324, 2.0 ** -500])
def test_cosine_gradient_rows_with_entries_below_the_domain_are_left(tiny):
    """A subnormal (or 2^-500) entry beside a zero row, upstream 3e38 (the totality test's
    seed 54): the products x1_d x2_d of such entries are not exact in TwoProduct, and the
    bounds built on them failed (an estimate off by more than its 64th of an ulp, and a wrong
    rounding at 5e-324). Such rows are left to the engine, whose results are the exact ones."""
    x1, x2 = np.array([[0.0, 1.0]]), np.array([[tiny, 0.5]])
    x1[0, 1] = 0.0
    fmt = FORMATS["float64"]
    grads = embedding.cosine_loss_grad(np.array([3e38]), x1, x2, np.array([1.0]), 0.0, "none",
                                       fmt)
    eps = mpf(embedding.EPS)
    with mp.workdps(60):
        u, v = [mpf(float(x)) for x in x1[0]], [mpf(float(x)) for x in x2[0]]
        P = mp.fsum(a * b for a, b in zip(u, v))
        A, B = mp.fsum(a * a for a in u) + eps, mp.fsum(b * b for b in v) + eps
        R = mp.sqrt(A * B)
        # d(1 - cos) / d x1 = -(x2 - (P / A) x1) / R, times the upstream gradient
        want = [float(-mpf(3e38) * (b - P / A * a) / R) for a, b in zip(u, v)]
    assert grads["input1"].rounded.reshape(-1).tolist() == want
