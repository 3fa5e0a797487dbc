"""The linear_cross_entropy reference (loss_reference/linear.py) proved against mpmath.

The oracle writes the loss from its definition: every logit z_c = sum_d x_d W_cd + b_c summed
in mpmath at 60+ digits (exact for these inputs), nlp = lse(z) - z, cross_entropy's formula on
it (index targets with ignore_index and torch's weighted mean, probability targets, label
smoothing), and the gradients from G = d loss / d z: G W, G^T x and the column sums of G.
Every value is computed at two precisions (``exact_twice``), rounded by test_reference's
``correctly_round`` and must equal the certified reference, in every format and reduction.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from mpmath import mp, mpf
from test_reference import assert_certified, exact_twice, to_format

from conformance.specs import REDUCTIONS
from loss_reference import linear
from loss_reference.engine import EvaluationError
from loss_reference.formats import FORMATS

IGNORE = -100


def _logit_grads(x, W, b, target, w, eps, reduction, g):
    """Per row (loss, G row) at the current mpmath precision, and the mean's divisor."""
    M, C = x.shape[0], W.shape[0]
    soft = np.asarray(target).dtype.kind == "f"
    rows, counted_weights = [], []
    for i in range(M):
        z = [mp.fsum(mpf(float(x[i, d])) * mpf(float(W[c, d])) for d in range(x.shape[1]))
             + mpf(float(b[c])) for c in range(C)]
        top = max(z)
        lse = top + mp.log(mp.fsum(mp.exp(v - top) for v in z))
        s = [mp.exp(v - lse) for v in z]
        if soft:
            q = [mpf(float(w[c])) * ((1 - mpf(eps)) * mpf(float(target[i, c])) + mpf(eps) / C)
                 for c in range(C)]
        elif int(target[i]) == IGNORE:
            rows.append((mpf(0), [mpf(0)] * C, False, None))
            continue
        else:
            t = int(target[i])
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
        divisor = mpf(M) if soft else mp.fsum(counted_weights)
    return rows, divisor


def oracle(x, W, b, target, w, eps, reduction, g, guard):
    """{'value', 'input', 'linear_weight', 'linear_bias'}, and with probability targets
    'target' and 'weight': ([values], shape) each."""
    M, D = x.shape
    C = W.shape[0]
    with mp.workdps(60 + guard):
        rows, divisor = _logit_grads(x, W, b, target, w, eps, reduction, g)
        losses = [r[0] for r in rows]
        if reduction == "none":
            value = (losses, (M,))
            upstream = [mpf(float(v)) for v in np.asarray(g).reshape(-1)]
        else:
            total = mp.fsum(losses)
            value = ([total if reduction == "sum" else total / divisor], ())
            upstream = [mpf(float(g)) / divisor] * M
        G = [[upstream[i] * v for v in rows[i][1]] for i in range(M)]
        d_input = [mp.fsum(G[i][c] * mpf(float(W[c, d])) for c in range(C))
                   for i in range(M) for d in range(D)]
        d_weight = [mp.fsum(G[i][c] * mpf(float(x[i, d])) for i in range(M))
                    for c in range(C) for d in range(D)]
        d_bias = [mp.fsum(G[i][c] for i in range(M)) for c in range(C)]
        out = {"value": value, "input": (d_input, (M, D)),
               "linear_weight": (d_weight, (C, D)), "linear_bias": (d_bias, (C,))}
        if np.asarray(target).dtype.kind == "f":  # d / d p_ic and d / d w_c
            nlp = [r[3] for r in rows]
            out["target"] = ([upstream[i] * (1 - mpf(eps)) * mpf(float(w[c])) * nlp[i][c]
                              for i in range(M) for c in range(C)], (M, C))
            out["weight"] = ([mp.fsum(upstream[i] * ((1 - mpf(eps)) * mpf(float(target[i, c]))
                                                     + mpf(eps) / C) * nlp[i][c]
                                      for i in range(M)) for c in range(C)], (C,))
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


@pytest.mark.parametrize("fmt_name, reduction, soft, eps",
                         list(itertools.product(FORMATS, REDUCTIONS, (False, True),
                                                (0.0, 0.1, 1.0))))
def test_value_and_gradients(fmt_name, reduction, soft, eps):
    fmt = FORMATS[fmt_name]
    x, W, b, target, w = _case(fmt, soft, seed=len(fmt_name) + 7 * soft)
    g = to_format(np.array([0.5, -1.25, 2.0]) if reduction == "none" else np.array(0.75), fmt)
    expected = exact_twice(lambda guard: oracle(x, W, b, target, w, eps, reduction, g, guard),
                           fmt)
    ignore = None if soft else IGNORE
    value = linear.loss(x, W, target, b, w, ignore, eps, reduction, fmt)
    assert_certified(value, *expected["value"], fmt)
    grads = linear.loss_grad(g, x, W, target, b, w, ignore, eps, reduction, fmt)
    assert set(grads) == set(expected) - {"value"}
    for name in grads:
        assert_certified(grads[name], *expected[name], fmt)


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
