"""The linear_cross_entropy reference (loss_reference/linear.py) proved against mpmath.

The oracle writes the loss from its definition: every logit z_c = sum_d x_d W_cd + b_c summed
in mpmath at 60+ digits (exact for these inputs), nlp = lse(z) - z, cross_entropy's formula on
it (index targets with ignore_index and torch's weighted mean, probability targets, label
smoothing), and the gradients from G = d loss / d z: G W, G^T x and the column sums of G.
The K-dimensional weight (C, d1, ..., dK, D) is the same formula per row (n, k), one row per
token and position, with W[:, k] and b[:, k]; the input's gradient sums over every position of
its token. Every value is computed at two precisions (``exact_twice``), rounded by
test_reference's ``correctly_round`` and must equal the certified reference, in every format
and reduction.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpmath import mp, mpf
from test_reference import assert_certified, exact_twice, to_format

from conformance.specs import REDUCTIONS
from conformance.specs import linear as linear_spec
from loss_reference import engine, linear
from loss_reference.engine import EvaluationError
from loss_reference.formats import FORMATS

IGNORE = -100


def _logit_grads(x, W, b, target, w, eps, reduction):
    """Per row (n, k) in the order of cross_entropy's rows (token-major): (loss, G row, counts,
    nlp row) at the current mpmath precision, and the mean's divisor. W (C, d1, ..., D), b
    (C, d1, ...): the logits of row (n, k) are x_n . W[:, k] + b[:, k]; the 2-D weight has one
    position."""
    N, D = x.shape
    C, P = W.shape[0], int(np.prod(W.shape[1:-1], dtype=np.int64))
    W3, b2 = W.reshape(C, P, D), b.reshape(C, P)
    soft = np.asarray(target).dtype.kind == "f"
    target = np.asarray(target).reshape((N, C, P) if soft else (N, P))
    rows, counted_weights = [], []
    for i, k in itertools.product(range(N), range(P)):
        z = [mp.fsum(mpf(float(x[i, d])) * mpf(float(W3[c, k, d])) for d in range(D))
             + mpf(float(b2[c, k])) for c in range(C)]
        top = max(z)
        lse = top + mp.log(mp.fsum(mp.exp(v - top) for v in z))
        s = [mp.exp(v - lse) for v in z]
        if soft:
            q = [mpf(float(w[c])) * ((1 - mpf(eps)) * mpf(float(target[i, c, k])) + mpf(eps) / C)
                 for c in range(C)]
        elif int(target[i, k]) == IGNORE:
            rows.append((mpf(0), [mpf(0)] * C, False, None))
            continue
        else:
            t = int(target[i, k])
            q = [mpf(eps) / C * mpf(float(w[c])) for c in range(C)]
            q[t] += (1 - mpf(eps)) * mpf(float(w[t]))
            counted_weights.append(mpf(float(w[t])))
        loss = mp.fsum(q[c] * (lse - z[c]) for c in range(C))
        total = mp.fsum(q)
        rows.append((loss, [s[c] * total - q[c] for c in range(C)], True,
                     [lse - z[c] for c in range(C)]))
    if reduction != "mean":
        divisor = mpf(1)
    else:
        divisor = mpf(N * P) if soft else mp.fsum(counted_weights)
    return rows, divisor


def oracle(x, W, b, target, w, eps, reduction, g, guard):
    """{'value', 'input', 'linear_weight', 'linear_bias'}, and with probability targets
    'target' and 'weight': ([values], shape) each. The weight (C, D) or (C, d1, ..., D)."""
    N, D = x.shape
    C, P = W.shape[0], int(np.prod(W.shape[1:-1], dtype=np.int64))
    W3 = W.reshape(C, P, D)
    spatial = W.shape[1:-1]
    with mp.workdps(60 + guard):
        rows, divisor = _logit_grads(x, W, b, target, w, eps, reduction)
        losses = [r[0] for r in rows]
        if reduction == "none":
            value = (losses, (N,) + spatial)
            upstream = [mpf(float(v)) for v in np.asarray(g).reshape(-1)]
        else:
            total = mp.fsum(losses)
            value = ([total if reduction == "sum" else total / divisor], ())
            upstream = [mpf(float(g)) / divisor] * (N * P)
        G = [[upstream[r] * v for v in rows[r][1]] for r in range(N * P)]
        d_input = [mp.fsum(G[i * P + k][c] * mpf(float(W3[c, k, d]))
                           for c in range(C) for k in range(P))
                   for i in range(N) for d in range(D)]
        d_weight = [mp.fsum(G[i * P + k][c] * mpf(float(x[i, d])) for i in range(N))
                    for c in range(C) for k in range(P) for d in range(D)]
        d_bias = [mp.fsum(G[i * P + k][c] for i in range(N)) for c in range(C) for k in range(P)]
        out = {"value": value, "input": (d_input, (N, D)),
               "linear_weight": (d_weight, W.shape), "linear_bias": (d_bias, W.shape[:-1])}
        if np.asarray(target).dtype.kind == "f":  # d / d p_ick and d / d w_c
            p = np.asarray(target).reshape(N, C, P)
            nlp = [r[3] for r in rows]
            out["target"] = ([upstream[i * P + k] * (1 - mpf(eps)) * mpf(float(w[c]))
                              * nlp[i * P + k][c]
                              for i in range(N) for c in range(C) for k in range(P)],
                             np.shape(target))
            out["weight"] = ([mp.fsum(upstream[i * P + k] * nlp[i * P + k][c]
                                      * ((1 - mpf(eps)) * mpf(float(p[i, c, k])) + mpf(eps) / C)
                                      for i in range(N) for k in range(P)) for c in range(C)],
                             (C,))
    return out


def _case(fmt, soft, seed):
    rng = np.random.default_rng(seed)
    M, D, C = 3, 4, 5
    x = to_format(rng.normal(size=(M, D)) * 2, fmt)
    W = to_format(rng.normal(size=(C, D)), fmt)
    b = to_format(rng.normal(size=C), fmt)
    w = to_format(rng.uniform(0.2, 2, C), fmt)
    if soft:
        w[1:3] = [0.0, -0.75]  # the weight's gradient with zero and negative weights
        p = rng.random((M, C))
        p[0, 2] = 0.0
        target = to_format(p / p.sum(axis=1, keepdims=True), fmt)
    else:
        target = np.array([1, IGNORE, 4])
    return x, W, b, target, w


def _assert_matches_oracle(x, W, b, target, w, eps, reduction, g, soft, fmt):
    """The reference's value and every gradient are the mpmath oracle's, rounded once."""
    expected = exact_twice(lambda guard: oracle(x, W, b, target, w, eps, reduction, g, guard),
                           fmt)
    ignore = None if soft else IGNORE
    value = linear.loss(x, W, target, b, w, ignore, eps, reduction, fmt)
    assert_certified(value, *expected["value"], fmt)
    grads = linear.loss_grad(g, x, W, target, b, w, ignore, eps, reduction, fmt)
    assert set(grads) == set(expected) - {"value"}
    for name in grads:
        assert_certified(grads[name], *expected[name], fmt)


@pytest.mark.parametrize("fmt_name, reduction, soft, eps",
                         list(itertools.product(FORMATS, REDUCTIONS, (False, True),
                                                (0.0, 0.1, 1.0))))
def test_value_and_gradients(fmt_name, reduction, soft, eps):
    fmt = FORMATS[fmt_name]
    x, W, b, target, w = _case(fmt, soft, seed=len(fmt_name) + 7 * soft)
    g = to_format(np.array([0.5, -1.25, 2.0]) if reduction == "none" else np.array(0.75), fmt)
    _assert_matches_oracle(x, W, b, target, w, eps, reduction, g, soft, fmt)


def _k_dim_case(fmt, soft, spatial, seed):
    """Tokens (2, 3), a weight (4, *spatial, 3) and its bias, class weights (zero and negative
    ones with probability targets), index targets with one ignored position."""
    rng = np.random.default_rng(seed)
    N, D, C = 2, 3, 4
    x = to_format(rng.normal(size=(N, D)) * 2, fmt)
    W = to_format(rng.normal(size=(C,) + spatial + (D,)), fmt)
    b = to_format(rng.normal(size=(C,) + spatial), fmt)
    w = to_format(rng.uniform(0.2, 2, C), fmt)
    if soft:
        w[1:3] = [0.0, -0.75]
        p = rng.random((N, C) + spatial)
        target = to_format(p / p.sum(axis=1, keepdims=True), fmt)
    else:
        target = rng.integers(0, C, (N,) + spatial)
        target.reshape(-1)[1] = IGNORE
    return x, W, b, target, w


K_DIM_SHAPES = ((3,), (2, 2), (1,))


@pytest.mark.parametrize("fmt_name, reduction, soft, eps",
                         list(itertools.product(FORMATS, REDUCTIONS, (False, True),
                                                (0.0, 0.1))))
def test_k_dimensional_value_and_gradients(fmt_name, reduction, soft, eps):
    """The K-dimensional weight: value and every gradient against the mpmath oracle."""
    fmt = FORMATS[fmt_name]
    spatial = K_DIM_SHAPES[(len(fmt_name) + len(reduction)) % len(K_DIM_SHAPES)]
    x, W, b, target, w = _k_dim_case(fmt, soft, spatial, seed=len(fmt_name) + 7 * soft)
    N = x.shape[0]
    upstream = np.linspace(-1.5, 2.0, N * int(np.prod(spatial))).reshape((N,) + spatial)
    g = to_format(upstream if reduction == "none" else np.array(-0.75), fmt)
    _assert_matches_oracle(x, W, b, target, w, eps, reduction, g, soft, fmt)


def test_k_dimensional_positions_are_the_2d_loss_of_their_weight_slices():
    """'none' at position k is the 2-D reference with W[:, k] and b[:, k] (rows do not mix),
    without a bias and without a class weight too."""
    fmt = FORMATS["float32"]
    rng = np.random.default_rng(5)
    x = to_format(rng.normal(size=(3, 4)), fmt)
    W = to_format(rng.normal(size=(5, 2, 3, 4)), fmt)
    b = to_format(rng.normal(size=(5, 2, 3)), fmt)
    target = rng.integers(0, 5, (3, 2, 3))
    for bias in (b, None):
        whole = linear.loss(x, W, target, bias, None, None, 0.2, "none", fmt)
        for i, j in itertools.product(range(2), range(3)):
            part = linear.loss(x, W[:, i, j], target[:, i, j],
                               None if bias is None else bias[:, i, j], None, None, 0.2,
                               "none", fmt)
            np.testing.assert_array_equal(whole.rounded[:, i, j], part.rounded)


def test_k_dimensional_weight_needs_batched_tokens():
    with pytest.raises(ValueError, match="requires batched input"):
        linear.loss(np.ones(3), np.ones((4, 2, 3)), np.zeros(2, np.int64), None, None, None,
                    0.0, "mean", FORMATS["float32"])


def test_k_dimensional_chunks_of_one_token_equal_one_chunk(monkeypatch):
    """Tokens cut into chunks of one (P C logits each) certify the same gradients."""
    rng = np.random.default_rng(4)
    fmt = FORMATS["bfloat16"]
    x = to_format(rng.normal(size=(7, 3)), fmt)
    W = to_format(rng.normal(size=(6, 2, 2, 3)), fmt)
    b = to_format(rng.normal(size=(6, 2, 2)), fmt)
    p = rng.random((7, 6, 2, 2))
    target = to_format(p / p.sum(axis=1, keepdims=True), fmt)
    w = to_format(rng.uniform(0.5, 2, 6), fmt)
    args = (np.array(1.0), x, W, target, b, w, None, 0.1, "mean", fmt)
    whole = linear.loss_grad(*args)
    monkeypatch.setattr(linear, "ROW_CHUNK_LOGITS", 6 * 4)  # one token per chunk
    chunked = linear.loss_grad(*args)
    assert set(whole) == {"input", "linear_weight", "linear_bias", "target", "weight"}
    for name in whole:
        np.testing.assert_array_equal(whole[name].rounded, chunked[name].rounded)


def test_k_dimensional_arb_tier_agrees_with_the_balls(monkeypatch):
    """The engine functions on arb objects (the last tier): with every ball result refused,
    the K-dimensional loss and gradients certify the same numbers."""
    fmt = FORMATS["float32"]
    x, W, b, target, w = _k_dim_case(fmt, True, (2, 2), seed=9)
    index_target = np.array([[[0, 3], [IGNORE, 1]], [[2, 2], [3, 0]]])
    calls = [(target, None, "mean", np.array(1.5)),
             (index_target, IGNORE, "none", to_format(np.linspace(-1, 1, 8).reshape(2, 2, 2),
                                                        fmt))]
    for t, ignore, reduction, g in calls:
        balls = [linear.loss(x, W, t, b, w, ignore, 0.1, reduction, fmt),
                 linear.loss_grad(g, x, W, t, b, w, ignore, 0.1, reduction, fmt)]
        before = engine.STATS["arb"]
        with monkeypatch.context() as patch:
            certify = engine.certify
            patch.setattr(engine, "certify", lambda ball, fmt: (
                certify(ball, fmt)[0], np.zeros(np.shape(ball.mid), dtype=bool)))
            arb = [linear.loss(x, W, t, b, w, ignore, 0.1, reduction, fmt),
                   linear.loss_grad(g, x, W, t, b, w, ignore, 0.1, reduction, fmt)]
        assert engine.STATS["arb"] > before
        np.testing.assert_array_equal(balls[0].rounded, arb[0].rounded)
        assert set(balls[1]) == set(arb[1])
        for name in balls[1]:
            np.testing.assert_array_equal(balls[1][name].rounded, arb[1][name].rounded)


def test_agrees_with_cross_entropy_of_exact_logits():
    """Where the logits are exact in float64 (small integers), the loss is cross_entropy's."""
    from loss_reference import classification

    x = np.array([[1.0, 2.0], [-1.0, 3.0]])
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]])
    target = np.array([2, 0])
    fmt = FORMATS["float32"]
    ours = linear.loss(x, W, target, None, None, None, 0.1, "none", fmt)
    theirs = classification.loss("cross_entropy", x @ W.T, target, None, IGNORE, 0.1, "none",
                                 fmt)
    np.testing.assert_array_equal(ours.rounded, theirs.rounded)


def test_non_finite_inputs_are_not_certified():
    x = np.array([[np.inf, 1.0]])
    with pytest.raises(EvaluationError, match="finite inputs only"):
        linear.loss(x, np.ones((3, 2)), np.array([0]), None, None, None, 0.0, "mean",
                    FORMATS["float32"])


def test_a_wide_vocabulary_in_chunks_equals_one_chunk(monkeypatch):
    """Rows cut into chunks (their sums added by the engine) certify the same result."""
    rng = np.random.default_rng(3)
    x = to_format(rng.normal(size=(40, 8)), FORMATS["bfloat16"])
    W = to_format(rng.normal(size=(3000, 8)), FORMATS["bfloat16"])
    target = rng.integers(0, 3000, 40)
    fmt = FORMATS["bfloat16"]
    whole = linear.loss_grad(np.array(1.0), x, W, target, None, None, None, 0.0, "sum", fmt)
    monkeypatch.setattr(linear, "ROW_CHUNK_LOGITS", 3000 * 3)  # 3 rows per chunk
    chunked = linear.loss_grad(np.array(1.0), x, W, target, None, None, None, 0.0, "sum", fmt)
    for name in whole:
        np.testing.assert_array_equal(whole[name].rounded, chunked[name].rounded)


def test_probability_targets_without_a_weight_differentiate_the_target_only():
    """No class weight passed, none differentiated; an unbatched token's target gradient has
    the target's shape (C,)."""
    fmt = FORMATS["float64"]
    x, W, p = np.array([1.0, -2.0]), np.array([[1.0, 0.5], [0.0, 1.0], [-1.0, 2.0]]), None
    p = np.array([0.25, 0.75, 0.0])
    grads = linear.loss_grad(np.array(1.0), x, W, p, None, None, None, 0.0, "sum", fmt)
    assert set(grads) == {"input", "linear_weight", "target"}
    z = W @ x
    nlp = np.logaddexp.reduce(z) - z
    np.testing.assert_allclose(grads["target"].rounded, nlp, rtol=1e-15)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 6), st.floats(1e-9, 200.0), st.integers(0, 2 ** 32 - 1))
def test_softmax_moves_no_further_than_the_tolerance_says(classes, size, seed):
    """The linear family's tolerance carries the logits' errors |d_c| <= dz_c through the
    softmax to first order plus ``beyond_first_order``'s remainder: no perturbation within the
    errors moves the softmax or the log-sum-exp further, whatever their size (a bfloat16 logit
    of 30,000 rounds by up to 64)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 10, (1, classes))
    dz = rng.uniform(0, size, (1, classes))
    lse = float(np.logaddexp.reduce(z[0]))
    nlp, s = lse - z, np.exp(z - lse)
    softmax_excess, lse_excess = linear_spec.beyond_first_order(s, nlp, dz)
    first = s * (dz + np.sum(s * dz))
    for d in [rng.uniform(-1, 1, (1, classes)) * dz, np.sign(rng.normal(size=(1, classes))) * dz]:
        moved = z + d
        lse_moved = float(np.logaddexp.reduce(moved[0]))
        assert np.all(np.abs(np.exp(moved - lse_moved) - s) <= (first + softmax_excess) * (1 + 1e-9)
                      + 1e-15)
        assert abs(lse_moved - lse) <= float(np.sum(s * dz) + lse_excess[0, 0]) * (1 + 1e-9) + 1e-12


def test_a_mean_over_zero_weights_takes_the_exact_numerators_sign():
    """Weights 1 and -1 at the targets, and the second token's logits the first's shifted by
    3.25 with its classes swapped: A = nlp - nlp = 0 exactly (and B too), so 'mean' is 0 / 0,
    NaN; from float64 logits the two log-sum-exps differ (+inf)."""
    x = np.array([[0.0, 1.0], [4.25, 3.25]])
    W, t, w = np.eye(2), np.array([0, 1]), np.array([1.0, -1.0])
    for smoothing in (0.0, 0.25):
        value = linear.loss(x, W, t, None, w, -100, smoothing, "mean", FORMATS["float64"])
        assert np.isnan(value.rounded), smoothing
    # a numerator that is not 0: the infinity of its sign (A = nlp(0, 1)_0 - nlp(1, 0)_1 > 0)
    value = linear.loss(x[:1].repeat(2, 0), W, t, None, w, -100, 0.0, "mean", FORMATS["float64"])
    assert value.rounded == np.inf
