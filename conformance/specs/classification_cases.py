"""Random and edge cases of the classification family (cross_entropy, nll_loss).

The contract and the tolerance rule head ``classification.py``; this module only draws calls:
shapes (unbatched, (N, C), N == C, small and large C, K-dimensional, empty), logits in every
regime (normal, large, tiny, mixed, a large common row offset, -inf masked classes), index
targets with an ignore_index and a padding fraction, probability targets, class weights and
label smoothing, layouts and upstream gradients.
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st

from loss_reference.classification import DEFAULT_IGNORE_INDEX

from ..cases import (REGIMES, Case, bulk_values, float_array, layouts_for, make_expandable,
                     round_to, saturation_tags, upstream_gradient)

DRAWN_ELEMENTS = 24  # arrays larger than this are filled by numpy from a drawn seed
arrays = functools.partial(float_array, max_drawn=DRAWN_ELEMENTS, planted=8)

SHAPE_KINDS = ("small", "small", "unbatched", "square", "tall", "k-dim", "k-dim-2", "empty",
               "small-classes", "wide")


def class_shape(draw):
    """An input shape ((C,), (N, C) or (N, C, d...)) from a drawn kind; returns (shape, kind)."""
    kind = draw(st.sampled_from(SHAPE_KINDS), label="shape kind")
    few = st.integers(2, 8)
    if kind == "small":
        shape = (draw(st.integers(1, 8)), draw(few))
    elif kind == "unbatched":
        shape = (draw(st.integers(1, 12)),)
    elif kind == "square":
        n = draw(st.integers(2, 10))
        shape = (n, n)
    elif kind == "tall":
        shape = (draw(st.integers(40, 120)), draw(st.integers(2, 4)))
    elif kind == "k-dim":
        shape = (draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(1, 5)))
    elif kind == "k-dim-2":
        shape = (draw(st.integers(1, 2)), draw(st.integers(2, 4)), draw(st.integers(1, 3)),
                 draw(st.integers(1, 3)))
    elif kind == "empty":
        shape = draw(st.sampled_from([(0, draw(few)), (0, draw(few), 3)]))
    elif kind == "small-classes":
        shape = (draw(st.integers(1, 6)), draw(st.sampled_from([1, 2, 3, 5])))
    else:
        shape = (draw(st.integers(1, 2)), draw(st.integers(4096, 4700)))
    return shape, kind


def batch_shape_of(shape) -> tuple:
    """The shape of 'none' (and of an index target): the input's without its class axis."""
    return () if len(shape) == 1 else (shape[0],) + tuple(shape[2:])


def classes_of(shape) -> int:
    return shape[0] if len(shape) == 1 else shape[1]


def to_rows(values, shape):
    """An input-shaped array as (M, C) rows (class axis last)."""
    c = classes_of(shape)
    return values.reshape(1, c) if len(shape) == 1 else np.moveaxis(values, 1, -1).reshape(-1, c)


def from_rows(rows, shape):
    """(M, C) rows back to an input-shaped array."""
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return np.moveaxis(moved, -1, 1)


# --- logits --------------------------------------------------------------------------------------

LOGIT_REGIMES = ("normal", "normal", "large", "tiny", "mixed", "offset", "masked")
OFFSETS = (100.0, -100.0, 1e4, -1e4, 3e4)


def _regime_values(draw, shape, regime, label):
    return arrays(draw, shape, REGIMES[regime], lambda rng, n: bulk_values(rng, regime, n), label)


def logit_values(draw, shape, dtype, kind):
    """Unrounded logits (float64) of a drawn regime and the regime's name.

    'offset' adds one large constant to every row (shift invariance); 'masked' is normal
    values whose -inf entries the caller places (they depend on the target).
    """
    regime = draw(st.sampled_from(LOGIT_REGIMES), label="logit regime")
    base = "normal" if regime in ("offset", "masked") else regime
    x = _regime_values(draw, shape, base, "logits")
    if regime == "offset":
        x = x + draw(st.sampled_from(OFFSETS), label="offset")
    return x, regime


def mask_logits(draw, x_rows, keep):
    """Set drawn entries of each row to -inf, never where ``keep`` (M, C) is True."""
    if x_rows.size == 0:
        return x_rows
    rate = draw(st.sampled_from([0.2, 0.5, 0.9]), label="masked fraction")
    seed = draw(st.integers(0, 2**32 - 1), label="mask seed")
    masked = (np.random.default_rng(seed).random(x_rows.shape) < rate) & ~keep
    return np.where(masked, -np.inf, x_rows)


# --- targets -------------------------------------------------------------------------------------

IGNORE_CHOICES = ("default", "default", "-1", "0", "last", "-300", "beyond")
PADDING = (0.0, 0.0, 0.1, 0.5, 0.99, 1.0)


def _ignore_value(choice, classes):
    return {"default": DEFAULT_IGNORE_INDEX, "-1": -1, "0": 0, "last": classes - 1,
            "-300": -300, "beyond": classes + 3}[choice]


def index_targets(draw, shape):
    """(target int64 of the batch shape, ignore_index, padding fraction tag)."""
    classes = classes_of(shape)
    batch = batch_shape_of(shape)
    ignore = _ignore_value(draw(st.sampled_from(IGNORE_CHOICES), label="ignore_index"),
                           classes)
    labels = arrays(draw, batch, st.integers(0, classes - 1),
                    lambda rng, n: rng.integers(0, classes, n), "target").astype(np.int64)
    fraction = draw(st.sampled_from(PADDING), label="padding fraction")
    if fraction and labels.size:
        seed = draw(st.integers(0, 2**32 - 1), label="padding seed")
        padded = np.asarray(np.random.default_rng(seed).random(labels.shape) < fraction)
        if fraction == 1.0:
            padded = np.ones(labels.shape, dtype=bool)
        labels = np.where(padded, ignore, labels)
    return labels.astype(np.int64), ignore


PROB_KINDS = ("distribution", "distribution", "one-hot", "unnormalised")


def probability_targets(draw, shape, dtype):
    """Float targets of the input's shape: rows of a distribution, one-hot, or any [0, 1]."""
    kind = draw(st.sampled_from(PROB_KINDS), label="probability kind")
    classes = classes_of(shape)
    if kind == "one-hot":
        labels = arrays(draw, batch_shape_of(shape), st.integers(0, classes - 1),
                        lambda rng, n: rng.integers(0, classes, n), "classes")
        rows = np.eye(classes)[labels.astype(np.int64).reshape(-1)]
    else:
        values = arrays(draw, shape, st.floats(0, 1), lambda rng, n: rng.random(n), "target")
        rows = to_rows(values, shape)
        if kind == "distribution":
            sums = rows.sum(axis=1, keepdims=True)
            rows = np.where(sums > 0, rows / np.where(sums > 0, sums, 1), 1.0 / classes)
    return round_to(from_rows(rows, shape), dtype), kind


# --- weights and options -------------------------------------------------------------------------

WEIGHTINGS = ("none", "none", "uniform", "non-uniform", "with-zeros", "signed")
WEIGHT_LEVELS = [0.0, 0.5, 1.0, 2.5]
WEIGHT_ELEMENTS = {
    "non-uniform": (st.floats(0.05, 3), lambda rng, n: rng.uniform(0.05, 3, n)),
    "with-zeros": (st.sampled_from(WEIGHT_LEVELS), lambda rng, n: rng.choice(WEIGHT_LEVELS, n)),
    "signed": (st.floats(-1, 3), lambda rng, n: rng.uniform(-1, 3, n)),
}
SMOOTHINGS = (None, None, 0.0, 0.05, 0.1, 0.2, 0.5, 1.0)


def class_weights(draw, classes, dtype, kind):
    """A weight of shape (C,) of a kind, rounded to the dtype (None for 'none')."""
    if kind == "none":
        return None
    if kind == "uniform":
        return round_to(np.full(classes, draw(st.floats(0.1, 4), label="weight value")), dtype)
    elements, bulk = WEIGHT_ELEMENTS[kind]
    return round_to(arrays(draw, (classes,), elements, bulk, "weight"), dtype)


def layout_tags(layouts):
    """Region tags naming the non-contiguous layouts of a case."""
    return tuple(sorted({f"layout-{v}" for v in layouts.values() if v != "contiguous"}))


UPSTREAM = st.floats(-4, 4)


def upstream_values(draw, out_shape, dtype):
    """A drawn upstream gradient of the output's shape, rounded to the dtype."""
    if out_shape == ():
        return upstream_gradient(draw, out_shape, dtype)
    return round_to(arrays(draw, out_shape, UPSTREAM, lambda rng, n: rng.uniform(-4, 4, n),
                           "grad_output"), dtype)


def case_strategy(name):
    """The hypothesis strategy of random cases for one loss (a function of the Variant)."""
    @st.composite
    def cases(draw, variant):
        """Random cases of one loss for one dtype and reduction."""
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        shape, kind = class_shape(draw)
        classes = classes_of(shape)
        x, regime = logit_values(draw, shape, dtype, kind)
        options = {"reduction": reduction}
        tags = [kind, regime]
        soft = name == "cross_entropy" and draw(st.integers(0, 3), label="target form") == 0
        if soft:
            target, prob_kind = probability_targets(draw, shape, dtype)
            tags += ["probability-target", f"target-{prob_kind}"]
            keep = to_rows(target, shape) != 0  # -inf only where the target is 0
        else:
            target, ignore = index_targets(draw, shape)
            if ignore != DEFAULT_IGNORE_INDEX or draw(st.booleans(), label="pass default"):
                options["ignore_index"] = ignore
            counted = target != ignore
            tags.append("index-target")
            tags.append("all-padding" if target.size and not counted.any() else
                        "padding" if not counted.all() else "no-padding")
            keep = np.zeros((int(np.prod(batch_shape_of(shape))), classes), dtype=bool)
            flat = target.reshape(-1)
            keep[np.arange(flat.size), np.where(flat == ignore, 0, flat)] = True
        if regime == "masked":
            x = from_rows(mask_logits(draw, to_rows(x, shape), keep), shape)
        x = round_to(x, dtype) if regime != "masked" else np.where(
            np.isneginf(x), -np.inf, round_to(np.where(np.isneginf(x), 0, x), dtype))
        if name == "cross_entropy":
            smoothing = draw(st.sampled_from(SMOOTHINGS), label="label_smoothing")
            if smoothing is not None:
                options["label_smoothing"] = smoothing
                tags.append(f"smoothing={smoothing}")
        weighting = draw(st.sampled_from(WEIGHTINGS), label="weighting")
        weight = class_weights(draw, classes, dtype, weighting)
        tags.append(f"weight-{weighting}")
        args = {"input": x, "target": target, "weight": weight}
        names = [n for n in args if args[n] is not None]
        shapes = [np.shape(args[n]) for n in names]
        layouts = draw(layouts_for(names, shapes), label="layouts")
        for n, layout in layouts.items():
            if layout == "expanded":
                args[n] = make_expandable(args[n])
        finite = x[np.isfinite(x)]
        case = Case(dtype, args, options, layouts,
                    tuple(tags) + saturation_tags(finite, dtype) + layout_tags(layouts))
        out_shape = batch_shape_of(shape) if reduction == "none" else ()
        case.grad_output = upstream_values(draw, out_shape, dtype)
        return case

    return cases


# --- edge cases ----------------------------------------------------------------------------------

def _edge_rows(name, dtype, rng):
    """(id, input, target, weight, options) of the fixed catalogue: the regions random draws
    reach rarely or never (infinite logits, 32k classes, exact zero weights, torch's
    deviations), and the classic shapes. Kept short: every edge is a test per variant."""
    inf = np.inf
    big = {"float64": 750.0, "float32": 88.7, "float16": 100.0, "bfloat16": 1e4}[dtype]
    x4 = rng.normal(size=(4, 5)) * 3
    t4 = np.array([0, 4, 2, 1])
    w5 = np.array([0.5, 2.0, 0.0, 1.5, 1.0])
    p4 = np.array([[0.5, 0.25, 0.0, 0.125, 0.125], [0.0, 0.0, 0.0, 0.0, 1.0],
                   [0.25, 0.25, 0.25, 0.25, 0.0], [0.75, 0.0, 0.0, 0.0, 0.25]])
    rows = [
        ("empty-batch", rng.normal(size=(0, 4)), np.zeros(0, np.int64), None, {}),
        ("unbatched", rng.normal(size=5) * 2, np.array(3), None, {}),
        ("n-equals-c", rng.normal(size=(5, 5)) * 2, np.array([4, 0, 3, 3, 1]),
         rng.uniform(0.1, 2, 5), {}),
        ("all-padding", x4, np.full(4, DEFAULT_IGNORE_INDEX), None, {}),
        ("zero-weights", x4, t4, np.zeros(5), {}),
        ("signed-weights", x4, t4, np.array([-1.0, 0.0, 0.5, 2.0, -0.25]), {}),
        ("saturated", np.array([[big, -big, 0.0], [-big, big, 1.0], [0.0, 0.5, big]]),
         np.array([0, 0, 2]), None, {}),
        ("masked-non-target", np.array([[1.0, -inf, 2.0], [-inf, -inf, 0.5], [0.0, 3.0, -inf]]),
         np.array([0, 2, 1]), None, {}),
        ("masked-target", np.array([[1.0, -inf, 2.0], [0.5, 1.5, -1.0]]), np.array([1, 0]),
         None, {}),
    ]
    if dtype in ("float32", "bfloat16"):
        rows.append(("classes-32k", rng.normal(size=(1, 32768)) * 3, np.array([31000]), None, {}))
    if name == "cross_entropy":
        rows += [
            ("smoothing-one", x4, t4, None, {"label_smoothing": 1.0}),
            ("smoothing-two-classes", rng.normal(size=(6, 2)) * 2, np.array([0, 1, 1, 0, 1, 0]),
             None, {"label_smoothing": 0.5}),
            ("smoothing-masked", np.array([[1.0, -inf, 2.0], [0.0, 3.0, 1.0]]),
             np.array([0, 1]), None, {"label_smoothing": 0.1}),
            ("smoothing-masked-zero-weight", np.array([[1.0, -inf, 2.0], [0.0, 3.0, 1.0]]),
             np.array([0, 1]), np.array([1.0, 0.0, 1.0]), {"label_smoothing": 0.1}),
            ("masked-probabilities", np.array([[1.0, -inf, 2.0], [0.5, -inf, -inf]]),
             np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), None, {}),
            ("one-hot-probabilities", x4, np.eye(5)[t4], w5, {}),
            # the target's and weight's gradients: smoothing's factor (1 - e), signed and zero
            # weights; at masked classes, infinities of both signs and e = 1's zero coefficient
            ("probabilities-smoothing", x4, p4, np.array([-1.0, 0.0, 0.5, 2.0, 1.25]),
             {"label_smoothing": 0.2}),
            ("masked-probabilities-smoothing", np.array([[1.0, -inf, 2.0], [0.5, -inf, -inf]]),
             np.array([[0.75, 0.0, 0.25], [1.0, 0.0, 0.0]]), np.array([1.0, -0.5, 2.0]),
             {"label_smoothing": 0.1}),
            ("masked-probabilities-smoothing-one", np.array([[1.0, -inf, 2.0], [0.5, 1.0, 0.0]]),
             np.array([[0.75, 0.0, 0.25], [0.5, 0.25, 0.25]]), np.array([1.0, 2.0, 0.5]),
             {"label_smoothing": 1.0}),
            ("positive-infinite-logit", np.array([[1.0, inf, 0.0], [0.0, 1.0, 2.0]]),
             np.array([1, 0]), None, {}),
        ]
    return rows


@functools.lru_cache(maxsize=64)
def _edges(name, dtype, reduction, seed):
    """The catalogue for one variant, built once per seed (every test asks for it)."""
    rng = np.random.default_rng(seed)
    out = []
    for edge_id, x, target, w, options in _edge_rows(name, dtype, rng):
        finite = np.isfinite(x)
        x = np.where(finite, round_to(np.where(finite, x, 0), dtype), x)
        target = (round_to(target, dtype) if np.asarray(target).dtype.kind == "f"
                  else np.asarray(target, np.int64))
        args = {"input": x, "target": target,
                "weight": None if w is None else round_to(w, dtype)}
        shape = batch_shape_of(x.shape) if reduction == "none" else ()
        g = rng.uniform(-3, 3, shape) if shape else np.array(rng.choice([-2.5, 0.75]))
        layouts = {"input": "transposed"} if edge_id == "n-equals-c" else {}
        out.append((edge_id, Case(dtype, args, {"reduction": reduction, **options}, layouts,
                                  (edge_id,), grad_output=round_to(g, dtype))))
    return out


def edge_strategy(name):
    """The fixed catalogue of edge cases of one loss for one dtype and reduction."""
    def edges(variant, rng):
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        return list(_edges(name, dtype, reduction, int(rng.integers(2**32))))

    return edges
