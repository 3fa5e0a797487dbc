"""The embedding references (loss_reference/embedding.py), proved against mpmath.

The oracle writes each loss and gradient from its definition in mpmath at 80 digits (and again
with 40 more: both must round alike), with its own branch decisions (hinge side, swap's min,
signs, p = inf's maximum) taken from the high-precision values. Every certified reference
value must equal the oracle's correctly rounded one, on every regime, reduction and format.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from mpmath import mp, mpf
from test_reference import assert_certified, exact_twice, to_format

from loss_reference import embedding as emb
from loss_reference.formats import FORMATS
from conformance.specs import REDUCTIONS

FORMAT_NAMES = tuple(FORMATS)
G_VECTOR = [0.75, -2.5, 1.25, -0.375]
G_SCALAR = -2.5
BASE_DPS = 80


def _m(values):
    return [[mpf(float(v)) for v in row] for row in np.atleast_2d(values)]


def _reduce(per_row, reduction, shape):
    if reduction == "none":
        return per_row, shape
    total = mp.fsum(per_row)
    if reduction == "sum":
        return [total], ()
    return [total / len(per_row) if per_row else math.nan], ()


def _g(reduction, rows, fmt):
    if reduction == "none":
        return to_format(np.resize(G_VECTOR, rows), fmt)
    return to_format(np.full(rows, G_SCALAR), fmt)


# --- cosine_embedding_loss -----------------------------------------------------------------------

def cosine_exact(x1, x2, y, margin, reduction, guard, g=None):
    """The loss (g None) or {input1, input2: gradients} in mpmath."""
    with mp.workdps(BASE_DPS + guard):
        eps = mpf(emb.EPS)
        rows, grads1, grads2 = [], [], []
        n = len(np.atleast_2d(x1))
        for i, (u, v) in enumerate(zip(_m(x1), _m(x2))):
            p = mp.fsum(a * b for a, b in zip(u, v))
            a2 = mp.fsum(a * a for a in u) + eps
            b2 = mp.fsum(b * b for b in v) + eps
            root = mp.sqrt(a2 * b2)
            cos = p / root
            yi = float(np.reshape(y, -1)[i])
            rows.append(1 - cos if yi == 1 else max(cos - margin, 0))
            if g is not None:
                factor = -1 if yi == 1 else (1 if cos - margin > 0 else 0)
                scale = mpf(float(g[i])) * factor / (n if reduction == "mean" else 1)
                grads1 += [scale * (b - p / a2 * a) / root for a, b in zip(u, v)]
                grads2 += [scale * (a - p / b2 * b) / root for a, b in zip(u, v)]
        if g is not None:
            return {"input1": (grads1, np.shape(x1)), "input2": (grads2, np.shape(x1))}
        return _reduce(rows, reduction, np.shape(x1)[:-1])


def cosine_regime(name, fmt):
    sub = fmt.smallest_subnormal
    if name == "normal":
        x1, x2 = [[1.25, -3.5, 4.75], [2.5, 0.8125, -2.0]], [[0.5, -3.0, 1.0], [2.5, -1.5, 0.0]]
        y = [1.0, -1.0]
    elif name == "zero-vector":
        x1, x2, y = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], [1, -1]
    elif name == "identical":
        x1 = x2 = [[1.25, -3.5, 4.75], [3.0, 0.5, -1.0]]
        y = [1.0, -1.0]
    elif name == "kink":  # orthogonal rows: cos = 0 = margin
        x1, x2, y = [[1.0, 2.0], [3.0, -1.0]], [[-2.0, 1.0], [1.0, 3.0]], [-1.0, -1.0]
    elif name == "tiny":  # norms next to EPS
        x1, x2, y = [[1e-7, 0.0], [3e-6, -2e-6]], [[1e-7, 2e-7], [1e-6, 1e-6]], [1.0, -1.0]
    elif name == "subnormal":
        x1, x2, y = [[sub, 2 * sub]], [[-3 * sub, sub]], [1.0]
    elif name == "large":
        x1, x2, y = [[1e4, -3e4, 100.0]], [[2e4, 3e4, -5.0]], [-1.0]
    elif name == "empty":
        x1, x2, y = np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    else:
        raise AssertionError(name)
    return to_format(x1, fmt), to_format(x2, fmt), np.asarray(y, np.float64)


COSINE_REGIMES = ("normal", "zero-vector", "identical", "kink", "tiny", "subnormal", "large",
                  "empty")
COSINE_GRID = [pytest.param(r, red, f, m, id=f"{r}-{red}-{f}-m{m}")
               for r, red, f, m in itertools.product(COSINE_REGIMES, REDUCTIONS, FORMAT_NAMES,
                                                     (0.0, 0.5, -0.5))]


@pytest.mark.parametrize("regime, reduction, fmt_name, margin", COSINE_GRID)
def test_cosine_loss(regime, reduction, fmt_name, margin):
    fmt = FORMATS[fmt_name]
    x1, x2, y = cosine_regime(regime, fmt)
    values, shape = exact_twice(lambda guard: cosine_exact(x1, x2, y, margin, reduction, guard),
                                fmt)
    assert_certified(emb.cosine_loss(x1, x2, y, margin, reduction, fmt), values, shape, fmt)


@pytest.mark.parametrize("regime, reduction, fmt_name, margin", COSINE_GRID)
def test_cosine_loss_grad(regime, reduction, fmt_name, margin):
    fmt = FORMATS[fmt_name]
    x1, x2, y = cosine_regime(regime, fmt)
    g = _g(reduction, len(x1), fmt)
    upstream = g if reduction == "none" else to_format(np.array(G_SCALAR), fmt)
    expected = exact_twice(lambda guard: cosine_exact(x1, x2, y, margin, reduction, guard, g),
                           fmt)
    grads = emb.cosine_loss_grad(upstream, x1, x2, y, margin, reduction, fmt)
    for argument, (values, shape) in expected.items():
        assert_certified(grads[argument], values, shape, fmt)


def test_cosine_eps_is_torchs_float32_constant():
    """A vector of norm 1e-7 against itself: 1 - 1e-14 / (1e-14 + EPS), EPS = float32(1e-12)."""
    x = np.array([[1e-7, 0.0]])
    got = emb.cosine_loss(x, x, np.array([1.0]), 0.0, "sum", FORMATS["float64"]).rounded
    assert got == 0.9900990098618194  # torch 2.13 CPU's float64 result


# --- triplet losses ------------------------------------------------------------------------------

def _distance(kind, u, v, p, eps):
    if kind == "pairwise":
        w = [a - b + eps for a, b in zip(u, v)]
        if p == math.inf:
            return max([abs(c) for c in w], default=mpf(0))
        return mp.fsum(abs(c) ** p for c in w) ** (1 / mpf(p))
    if kind == "l1":
        return mp.fsum(abs(a - b) for a, b in zip(u, v))
    if kind == "relu-l1":
        return mp.fsum(max(a - b, 0) for a, b in zip(u, v))
    nu, nv = mp.sqrt(mp.fsum(a * a for a in u)), mp.sqrt(mp.fsum(b * b for b in v))
    return 1 - mp.fsum(a * b for a, b in zip(u, v)) / (nu * nv)


def _slopes(kind, u, v, p, eps):
    """(d distance / d u, d distance / d v) per element, torch's subgradients at kinks."""
    if kind == "pairwise":
        w = [a - b + eps for a, b in zip(u, v)]
        d = _distance(kind, u, v, p, eps)
        if p == math.inf:
            top = [abs(c) == d for c in w]
            first = [mp.sign(c) * t / max(sum(top), 1) for c, t in zip(w, top)]
        elif p == 1:
            first = [mp.sign(c) for c in w]
        else:
            first = [mp.sign(c) * (abs(c) / d) ** (p - 1) if d else mpf(0) for c in w]
        return first, [-f for f in first]
    if kind == "l1":
        first = [mp.sign(a - b) for a, b in zip(u, v)]
        return first, [-f for f in first]
    if kind == "relu-l1":
        first = [mpf(1) if a > b else mpf(0) for a, b in zip(u, v)]
        return first, [-f for f in first]
    nu2, nv2 = mp.fsum(a * a for a in u), mp.fsum(b * b for b in v)
    dot, root = mp.fsum(a * b for a, b in zip(u, v)), mp.sqrt(nu2 * nv2)
    return ([-(b - dot / nu2 * a) / root for a, b in zip(u, v)],
            [-(a - dot / nv2 * b) / root for a, b in zip(u, v)])


def triplet_exact(a, p_, n_, options, reduction, guard, g=None):
    """The loss (g None) or {anchor, positive, negative: gradients} in mpmath."""
    kind, p, eps, margin, swap = emb.triplet_setting(options)
    with mp.workdps(BASE_DPS + guard):
        eps = mpf(eps)
        rows, grads = [], {"anchor": [], "positive": [], "negative": []}
        count = len(np.atleast_2d(a)) if reduction == "mean" else 1
        for i, (u, v, w) in enumerate(zip(_m(a), _m(p_), _m(n_))):
            d_pos, d_neg = _distance(kind, u, v, p, eps), _distance(kind, u, w, p, eps)
            take_neg, take_swap = mpf(1), mpf(0)
            if swap:
                d_swap = _distance(kind, v, w, p, eps)
                take_neg = mpf(1) if d_neg < d_swap else (mpf(0) if d_swap < d_neg else mpf(0.5))
                take_swap = 1 - take_neg
                d_neg = min(d_neg, d_swap)
            h = margin + d_pos - d_neg
            rows.append(max(h, 0))
            if g is None:
                continue
            s = mpf(float(g[i])) * (1 if h > 0 else 0) / count
            pa, pp = _slopes(kind, u, v, p, eps)
            na, nn = _slopes(kind, u, w, p, eps)
            sp, sn = _slopes(kind, v, w, p, eps) if swap else ([0] * len(u), [0] * len(u))
            grads["anchor"] += [s * (x - take_neg * y) for x, y in zip(pa, na)]
            grads["positive"] += [s * (x - take_swap * y) for x, y in zip(pp, sp)]
            grads["negative"] += [s * (-take_neg * x - take_swap * y) for x, y in zip(nn, sn)]
        if g is not None:
            return {k: (vals, np.shape(a)) for k, vals in grads.items()}
        return _reduce(rows, reduction, np.shape(a)[:-1])


def triplet_regime(name, fmt):
    """(anchor, positive, negative, options)."""
    base = [[1.25, -3.5, 4.75], [2.5, 0.8125, -2.0], [0.5, 0.25, 1.0]]
    other = [[0.5, -3.0, 1.0], [2.5, -1.5, 0.0], [-1.0, 2.0, 0.75]]
    third = [[1.0, 1.0, 1.0], [-2.0, 0.5, 3.0], [0.5, 0.25, 1.5]]
    options = {
        "p2": {}, "p1": {"p": 1.0}, "p3": {"p": 3.0}, "p1.5": {"p": 1.5},
        "pinf": {"p": math.inf}, "swap": {"swap": True, "margin": 3.0},
        "eps0": {"eps": 0.0, "margin": 2.0}, "l1": {"distance": "l1"},
        "relu-l1": {"distance": "relu-l1", "swap": True},
        "cosine": {"distance": "cosine", "margin": 0.5},
    }
    if name == "anchor-equals-positive":
        return (to_format(base, fmt), to_format(base, fmt), to_format(other, fmt),
                {"margin": 5.0})
    if name == "kink":  # 1 + 1 - 2 = 0 exactly, and a swap tie
        return (to_format([[0.0], [0.0]], fmt), to_format([[1.0], [4.0]], fmt),
                to_format([[2.0], [2.0]], fmt), {"eps": 0.0, "margin": 1.0, "swap": True})
    if name == "pinf-ties":  # |a - p| = (1, 1, 1): three maxima share the slope, 1/3 each
        return (to_format(base, fmt), to_format(np.array(base) - 1.0, fmt),
                to_format(third, fmt), {"p": math.inf, "eps": 0.0, "margin": 9.0})
    if name == "empty":
        z = np.zeros((0, 3))
        return z, z, z, {}
    if name == "unbatched":
        return (to_format(base[0], fmt), to_format(other[0], fmt), to_format(third[0], fmt),
                {"margin": 4.0})
    return to_format(base, fmt), to_format(other, fmt), to_format(third, fmt), options[name]


TRIPLET_REGIMES = ("p2", "p1", "p3", "p1.5", "pinf", "pinf-ties", "swap", "eps0", "l1",
                   "relu-l1", "cosine", "anchor-equals-positive", "kink", "empty", "unbatched")
TRIPLET_GRID = [pytest.param(r, red, f, id=f"{r}-{red}-{f}")
                for r, red, f in itertools.product(TRIPLET_REGIMES, REDUCTIONS, FORMAT_NAMES)]


@pytest.mark.parametrize("regime, reduction, fmt_name", TRIPLET_GRID)
def test_triplet_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    a, p_, n_, options = triplet_regime(regime, fmt)
    values, shape = exact_twice(lambda guard: triplet_exact(a, p_, n_, options, reduction,
                                                            guard), fmt)
    assert_certified(emb.triplet_loss(a, p_, n_, options, reduction, fmt), values, shape, fmt)


@pytest.mark.parametrize("regime, reduction, fmt_name", TRIPLET_GRID)
def test_triplet_loss_grad(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    a, p_, n_, options = triplet_regime(regime, fmt)
    rows = len(np.atleast_2d(a))
    g = _g(reduction, rows, fmt)
    upstream = (g if np.ndim(a) == 2 else g[0].reshape(())) if reduction == "none" else \
        to_format(np.array(G_SCALAR), fmt)
    expected = exact_twice(lambda guard: triplet_exact(a, p_, n_, options, reduction, guard, g),
                           fmt)
    grads = emb.triplet_loss_grad(upstream, a, p_, n_, options, reduction, fmt)
    for argument, (values, shape) in expected.items():
        assert_certified(grads[argument], values, shape, fmt)


def test_gradient_of_a_zero_difference_is_zero():
    """anchor - positive + eps = 0 exactly (float64): torch's norm gradient there is 0."""
    a, p_, n_ = np.zeros((1, 2)), np.full((1, 2), 1e-6), np.array([[3.0, 0.0]])
    grads = emb.triplet_loss_grad(np.array(1.0), a, p_, n_, {"margin": 10.0}, "sum",
                                  FORMATS["float64"])
    assert grads["positive"].rounded.tolist() == [[0.0, 0.0]]  # d(a, p)'s part only
    np.testing.assert_array_equal(grads["anchor"].rounded, -grads["negative"].rounded)


def test_a_relu_l1_term_far_below_zero_keeps_the_hinge_decided():
    """relu-l1 with a negative far below the anchor (a - n = -3.4e38 in one component): the
    relu of that whole-negative ball is exactly 0, so d(a, n) = 0 exactly and the hinge
    1 + 1 - 0 is decided active; the radius of -3.4e38 once spread into the distance, left the
    hinge undecided and the gradient at the kink's 0 (the totality test's seed 23)."""
    fmt = FORMATS["float32"]
    a, p_, n_ = np.array([[0.0, -2.0]]), np.array([[-1.0, 0.0]]), np.array([[0.0, 3.4e38]])
    n_ = to_format(n_, fmt)
    options = {"distance": "relu-l1", "margin": 1.0}
    grads = emb.triplet_loss_grad(np.array(1.0), a, p_, n_, options, "sum", fmt)
    assert grads["anchor"].rounded.tolist() == [[1.0, 0.0]]
    assert grads["positive"].rounded.tolist() == [[-1.0, 0.0]]


def test_a_hinge_too_close_for_float64_balls_is_decided_in_long_double():
    """Rows whose cos - margin is about 1e-15: float64 balls (radius ~1e-14) cannot tell its
    sign, long double balls can; the decision must come out exact, not undecided (0), for
    the rows above and below the margin alike. Exact signs from Fractions."""
    from fractions import Fraction

    rng = np.random.default_rng(3)
    x1 = rng.standard_normal((6, 64)).astype(np.float32).astype(np.float64)
    x2 = rng.standard_normal((6, 64)).astype(np.float32).astype(np.float64)
    eps = Fraction(emb.EPS)

    def exact_cos_squared(u, v):
        dot = sum(Fraction(a) * Fraction(b) for a, b in zip(u, v))
        norms = (sum(Fraction(a) ** 2 for a in u) + eps) * (sum(Fraction(b) ** 2 for b in v) + eps)
        return dot, dot * dot / norms

    for row, steps in zip(range(6), (10, -10, 12, -12, 9, -9)):
        dot, cos2 = exact_cos_squared(x1[row], x2[row])
        cos = math.copysign(math.sqrt(float(cos2)), float(dot))
        margin = cos
        for _ in range(abs(steps)):  # about 1e-15 above or below cos
            margin = math.nextafter(margin, math.inf if steps > 0 else -math.inf)
        m = Fraction(margin)
        # sign(cos - margin), with cos = dot / sqrt(norms): compare squares, minding signs
        if (dot >= 0) != (m >= 0):
            expected = 1 if dot >= 0 else -1
        else:
            bigger = cos2 > m * m
            expected = (1 if bigger else -1) * (1 if dot >= 0 else -1)
        hinge = emb.cosine_hinge(x1[row:row + 1], x2[row:row + 1], margin)
        assert hinge.tolist() == [expected], (row, steps)


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
def test_exact_decisions_at_a_hair_from_the_kink(p):
    """Margins a few float64 ulps from margin + d(a, p) - d(a, n) = 0, and a negative and a
    positive equally far from the anchor (swap's tie): the exact decisions are mpmath's signs
    at 200 digits, and the reference's gradient takes the decided side, where long double
    balls could not tell."""
    rng = np.random.default_rng(7)
    with mp.workdps(200):
        for trial in range(30):
            a, p_, n_ = (rng.standard_normal(3) for _ in range(3))
            if trial % 3 == 0:
                p_ = a.copy()  # d(a, n) = d(p, n): swap's min is an exact tie
            if trial % 5 == 0:
                a, p_, n_ = a * 1e-3, p_ * 1e-3, n_ * 1e-3  # margins below 0 where m < -d
            eps = 1e-6

            def dist(u, v):
                w = [mpf(float(x)) - mpf(float(y)) + mpf(eps) for x, y in zip(u, v)]
                if p == math.inf:
                    return max(abs(x) for x in w)
                return mp.fsum(abs(x) ** mpf(p) for x in w) ** (1 / mpf(p))

            kink = float(dist(a, n_) - dist(a, p_))
            for steps in (-3, 0, 3, -100, 100):
                margin = kink + (steps if abs(steps) == 100 else 0)  # and far from it
                for _ in range(abs(steps) if abs(steps) < 100 else 0):
                    margin = math.nextafter(margin, math.inf if steps > 0 else -math.inf)
                hinge = mpf(margin) + dist(a, p_) - dist(a, n_)
                want = float(mp.sign(hinge))
                got, _ = emb._exact_triplet_decisions("pairwise", a, p_, n_, p, eps, margin,
                                                      False)
                assert got == want, (trial, steps)
                order = float(mp.sign(dist(a, n_) - dist(p_, n_)))
                _, got_order = emb._exact_triplet_decisions("pairwise", a, p_, n_, p, eps,
                                                            margin, True)
                assert got_order == order


def test_p_inf_maximum_decided_exactly_where_long_double_sees_a_tie():
    """p = inf, a - p + eps = (-3e38 + 1e-6) three times and 1 - 3e38 + 1e-6 once: long
    double rounds all four to one magnitude, but the exact largest are the first three, so
    the gradient splits over them alone (the totality test's seed 60)."""
    a, p_, n_ = np.array([[0.0, 0.0, 0.0, 1.0]]), np.full((1, 4), 3e38), np.zeros((1, 4))
    options = {"margin": 1.0, "p": math.inf, "eps": 1e-6}
    grads = emb.triplet_loss_grad(np.array([0.5]), a, p_, n_, options, "none",
                                  FORMATS["float64"])
    assert grads["anchor"].rounded.tolist() == [[-0.5 / 3] * 3 + [-0.5]]
