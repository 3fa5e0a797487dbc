"""Random and edge cases of the linear family (linear_cross_entropy).

The contract and the tolerance rule head ``linear.py``; this module only draws calls: token
batches (unbatched, small, N == C, empty, tall, a wide vocabulary, a wide hidden size, the
K-dimensional weight (C, d1, ..., dK, D) with K = 1 or 2 and its bias (C, d1, ..., dK)), tokens
and layer weights in every regime (normal, large, tiny, saturating: logits far apart), with or
without a bias, index targets with ignore_index (left out, None, or a value) and padding,
probability targets, class weights, label smoothing, layouts and upstream gradients. Targets,
weights and smoothing are drawn as for cross_entropy (``classification_cases``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from hypothesis import strategies as st

from loss_reference.formats import format_of
from loss_reference.linear import DEFAULT_IGNORE_INDEX

from ..cases import REGIMES, Case, bulk_values, float_array, layouts_for, round_to
from .classification_cases import (SMOOTHINGS, WEIGHTINGS, class_weights, index_targets,
                                   layout_tags, probability_targets, upstream_values)

DRAWN_ELEMENTS = 24  # arrays larger than this are filled by numpy from a drawn seed
arrays = functools.partial(float_array, max_drawn=DRAWN_ELEMENTS, planted=8)

SHAPE_KINDS = ("small", "small", "unbatched", "square", "tall", "empty", "wide-vocabulary",
               "wide-hidden", "k-dim", "k-dim")
TOKEN_REGIMES = ("normal", "normal", "large", "tiny", "saturating")
# |x| |W| per regime: 'saturating' spreads the logits by hundreds (a softmax of one class)
SCALES = {"normal": 1.0, "large": 1.0, "tiny": 1.0, "saturating": 30.0}


def layer_shape(draw):
    """(tokens N (None when unbatched), hidden D, classes C, positions (d1, ..., dK), kind):
    the weight is (C, d1, ..., dK, D), positions () but for the kind 'k-dim'."""
    kind = draw(st.sampled_from(SHAPE_KINDS), label="shape kind")
    small = st.integers(1, 8)
    if kind == "small":
        return draw(small), draw(small), draw(st.integers(2, 8)), (), kind
    if kind == "unbatched":
        return None, draw(small), draw(st.integers(1, 12)), (), kind
    if kind == "square":
        n = draw(st.integers(2, 10))
        return n, draw(small), n, (), kind
    if kind == "tall":
        return draw(st.integers(40, 120)), draw(small), draw(st.integers(2, 4)), (), kind
    if kind == "empty":
        return 0, draw(small), draw(st.integers(2, 8)), (), kind
    if kind == "wide-vocabulary":
        return draw(st.integers(1, 3)), draw(st.integers(2, 16)), draw(
            st.integers(4096, 8192)), (), kind
    if kind == "k-dim":
        dims = draw(st.integers(1, 2), label="K")
        positions = tuple(draw(st.integers(1, 4 if dims == 1 else 3), label="d")
                          for _ in range(dims))
        return draw(st.integers(0, 4)), draw(small), draw(st.integers(2, 6)), positions, kind
    return (draw(st.integers(1, 4)), draw(st.integers(256, 1024)), draw(st.integers(2, 6)), (),
            kind)


def within_range(x, W, bias, dtype):
    """x scaled by a power of two (exact) until every logit's terms, sum_d |x_d W_cd| + |b_c|,
    stay below a sixteenth of the dtype's largest number: a layer whose logits overflow the
    dtype has no finite logits to compare (outside the contract). W (C, D) or (C, d1, ..., D):
    every logit's row of the weight is one of W.reshape(-1, D)."""
    limit = format_of(dtype).max_finite / 16
    hidden = W.shape[-1]
    rows = np.abs(W).reshape(-1, hidden)
    reach = float(np.max(np.abs(x).reshape(-1, hidden) @ rows.T, initial=0.0))
    reach += 0.0 if bias is None else float(np.max(np.abs(bias), initial=0.0))
    if reach <= limit:
        return x
    return x * 2.0 ** -math.ceil(math.log2(reach / limit))


def _values(draw, shape, regime, label):
    base = "normal" if regime == "saturating" else regime
    values = arrays(draw, shape, REGIMES[base], lambda rng, n: bulk_values(rng, base, n), label)
    return values * SCALES[regime]


@st.composite
def cases(draw, variant):
    """Random cases of linear_cross_entropy for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    tokens, hidden, classes, positions, kind = layer_shape(draw)
    regime = draw(st.sampled_from(TOKEN_REGIMES), label="token regime")
    input_shape = (hidden,) if tokens is None else (tokens, hidden)
    x = round_to(_values(draw, input_shape, regime, "input"), dtype)
    W = round_to(_values(draw, (classes,) + positions + (hidden,), "normal", "linear_weight")
                 / np.sqrt(hidden), dtype)
    bias = (round_to(_values(draw, (classes,) + positions, "normal", "linear_bias"), dtype)
            if draw(st.booleans(), label="bias") else None)
    x = within_range(x, W, bias, dtype)
    logits_shape = (classes,) if tokens is None else (tokens, classes) + positions
    options = {"reduction": reduction}
    tags = [kind, regime, "bias" if bias is not None else "no-bias"]
    if positions:
        tags.append(f"K={len(positions)}")
    if draw(st.integers(0, 3), label="target form") == 0:
        target, prob_kind = probability_targets(draw, logits_shape, dtype)
        tags += ["probability-target", f"target-{prob_kind}"]
        if draw(st.booleans(), label="pass ignore_index=None"):
            options["ignore_index"] = None
    else:
        target, ignore = index_targets(draw, logits_shape)
        if ignore != DEFAULT_IGNORE_INDEX:
            options["ignore_index"] = ignore
        else:
            passed = draw(st.sampled_from(["left out", "None", "-100"]), label="default passed")
            if passed != "left out":
                options["ignore_index"] = None if passed == "None" else DEFAULT_IGNORE_INDEX
        counted = target != ignore
        tags.append("index-target")
        tags.append("all-padding" if target.size and not counted.any() else
                    "padding" if not counted.all() else "no-padding")
    smoothing = draw(st.sampled_from(SMOOTHINGS), label="label_smoothing")
    if smoothing is not None:
        options["label_smoothing"] = smoothing
        tags.append(f"smoothing={smoothing}")
    weighting = draw(st.sampled_from(WEIGHTINGS), label="weighting")
    tags.append(f"weight-{weighting}")
    args = {"input": x, "linear_weight": W, "target": target, "linear_bias": bias,
            "weight": class_weights(draw, classes, dtype, weighting)}
    names = [n for n in ("input", "linear_weight") if args[n].size]
    layouts = draw(layouts_for(names, [args[n].shape for n in names]), label="layouts")
    layouts = {n: v for n, v in layouts.items() if v != "expanded"}  # no broadcast weights
    case = Case(dtype, args, options, layouts, tuple(tags) + layout_tags(layouts))
    out_shape = (() if tokens is None else (tokens,) + positions) if reduction == "none" else ()
    case.grad_output = upstream_values(draw, out_shape, dtype)
    return case


def case_strategy(variant):
    """The hypothesis strategy of random cases for one variant."""
    return cases(variant)


# --- edge cases ----------------------------------------------------------------------------------

def _edge_rows(dtype, rng):
    """(id, input, linear_weight, target, bias, weight, options): the regions random draws
    reach rarely (a 32k vocabulary, every token padding, zero weights, saturated logits, a
    hidden size of 1, K-dimensional weights with padding, one position or probabilities) and
    the classic shapes."""
    x4, W5 = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    t4 = np.array([0, 4, 2, 1])
    pad = DEFAULT_IGNORE_INDEX
    # targets of a (5, 2, 3, 3) weight: padding here and there, and a whole row of positions
    t_k = np.array([[[0, 4, pad], [2, pad, 1]], [[3, 3, 3], [pad, 0, 4]],
                    [[1, 2, 0], [4, 4, 2]], [[pad, pad, pad], [1, 0, 3]]])
    rows = [
        ("empty-batch", rng.normal(size=(0, 3)), W5, np.zeros(0, np.int64), None, None, {}),
        ("unbatched", rng.normal(size=3), W5, np.array(3), rng.normal(size=5), None, {}),
        ("n-equals-c", rng.normal(size=(5, 4)), rng.normal(size=(5, 4)),
         np.array([4, 0, 3, 3, 1]), None, rng.uniform(0.1, 2, 5), {}),
        ("all-padding", x4, W5, np.full(4, DEFAULT_IGNORE_INDEX), None, None, {}),
        ("padding-minus-one", x4, W5, np.array([0, -1, -1, 2]), None, None,
         {"ignore_index": -1}),
        ("ignore-index-none", x4, W5, np.array([0, DEFAULT_IGNORE_INDEX, 3, 2]), None, None,
         {"ignore_index": None}),
        ("zero-weights", x4, W5, t4, None, np.zeros(5), {}),
        ("saturated", x4 * 40, W5 * 40, t4, None, None, {}),
        ("hidden-one", rng.normal(size=(6, 1)), rng.normal(size=(4, 1)),
         np.array([0, 1, 2, 3, 0, 1]), rng.normal(size=4), None, {}),
        ("smoothing-one", x4, W5, t4, None, None, {"label_smoothing": 1.0}),
        ("one-hot-probabilities", x4, W5, np.eye(5)[t4], rng.normal(size=5), None, {}),
        ("k-dim-padding", x4, rng.normal(size=(5, 2, 3, 3)), t_k, rng.normal(size=(5, 2, 3)),
         rng.uniform(0.1, 2, 5), {"label_smoothing": 0.1}),
        ("k-dim-one-position", x4, rng.normal(size=(5, 1, 3)), t4[:, None], rng.normal(
            size=(5, 1)), None, {}),
        ("k-dim-probabilities", x4, rng.normal(size=(5, 3, 3)),
         np.moveaxis(rng.dirichlet(np.ones(5), size=(4, 3)), -1, 1), None, rng.uniform(0.1, 2, 5),
         {"label_smoothing": 0.2}),
    ]
    if dtype in ("float32", "bfloat16"):
        rows.append(("vocabulary-32k", rng.normal(size=(2, 8)), rng.normal(size=(32768, 8)),
                     np.array([31000, 7]), None, None, {"label_smoothing": 0.1}))
    return rows


@functools.lru_cache(maxsize=64)
def _edges(dtype, reduction, seed):
    """The catalogue for one variant, built once per seed (every test asks for it)."""
    rng = np.random.default_rng(seed)
    out = []
    for edge_id, x, W, target, bias, w, options in _edge_rows(dtype, rng):
        target = (round_to(target, dtype) if np.asarray(target).dtype.kind == "f"
                  else np.asarray(target, np.int64))
        x, W = round_to(x, dtype), round_to(W, dtype)
        b = None if bias is None else round_to(bias, dtype)
        args = {"input": within_range(x, W, b, dtype), "linear_weight": W,
                "target": target, "linear_bias": b,
                "weight": None if w is None else round_to(w, dtype)}
        shape = (x.shape[0],) + W.shape[1:-1] if reduction == "none" and x.ndim == 2 else ()
        g = rng.uniform(-3, 3, shape) if shape else np.array(rng.choice([-2.5, 0.75]))
        layouts = {"n-equals-c": {"linear_weight": "transposed"},
                   "k-dim-padding": {"linear_weight": "sliced"}}.get(edge_id, {})
        out.append((edge_id, Case(dtype, args, {"reduction": reduction, **options}, layouts,
                                  (edge_id,), grad_output=round_to(g, dtype))))
    return out


def edge_cases(variant, rng):
    """The fixed catalogue of edge cases for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    return list(_edges(dtype, reduction, int(rng.integers(2**32))))


