"""Case strategies, edge cases and invalid calls of the multi-label family (the contract is in
multilabel.py): multilabel_soft_margin_loss, multilabel_margin_loss and multi_hot.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


from ..cases import (Case, batch_shape, float_array, layouts_for, logits, make_expandable,
                     round_to, saturation_tags, upstream_gradient)
from . import InvalidCall


def output_shape(input_shape, reduction):
    """The output's shape: the batch shape for 'none', () otherwise."""
    if reduction != "none":
        return ()
    return tuple(input_shape[:-1])


def _layout_tags(layouts):
    return tuple(sorted({f"layout-{v}" for v in layouts.values() if v != "contiguous"}))


WEIGHTINGS = ("none", "uniform", "non-uniform", "with-zeros", "signed")


def _weights(draw, classes, dtype, kind):
    if kind == "none":
        return None
    if kind == "uniform":
        return round_to(np.full(classes, draw(st.floats(0.1, 4), label="weight value")), dtype)
    low = {"non-uniform": 0.05, "with-zeros": 0.0, "signed": -1.0}[kind]
    elements = st.floats(low, 3) if kind != "with-zeros" else st.sampled_from([0.0, 0.5, 1.0, 2.5])
    values = float_array(draw, (classes,), elements,
                         lambda rng, n: rng.uniform(low, 3, n), label="weight")
    return round_to(values, dtype)


@st.composite
def soft_margin_cases(draw, variant):
    """Random multilabel_soft_margin_loss cases for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    shape, kind = batch_shape(draw)
    classes = shape[-1]
    x, regime = logits(draw, shape, dtype)
    soft = draw(st.booleans(), label="soft targets") and draw(st.booleans())
    if soft:
        y = float_array(draw, shape, st.floats(0, 1), lambda rng, n: rng.random(n), "target")
    else:
        p = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), label="positive rate")
        y = float_array(draw, shape, st.sampled_from([0.0, 1.0]),
                        lambda rng, n: (rng.random(n) < p) * 1.0, "target")
    weighting = draw(st.sampled_from(WEIGHTINGS), label="weighting")
    w = _weights(draw, classes, dtype, weighting)
    names = ["input", "target"] + (["weight"] if w is not None else [])
    layouts = draw(layouts_for(names, [shape, shape, (classes,)]), label="layouts")
    args = {"input": x, "target": round_to(y, dtype), "weight": w}
    for name, layout in layouts.items():
        if layout == "expanded":
            args[name] = make_expandable(args[name])
    case = Case(dtype, args, {"reduction": reduction}, layouts,
                (kind, regime, f"weight-{weighting}", "soft-target" if soft else "binary-target")
                + saturation_tags(args["input"], dtype) + _layout_tags(layouts))
    case.grad_output = upstream_gradient(draw, output_shape(shape, reduction), dtype)
    return case


def soft_margin_edges(variant, rng):
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    big = {"float64": [37.4, 88.7, 750.0, 1e4, 1e30], "float32": [17.0, 88.7, 100.0, 1e4],
           "float16": [9.0, 17.0, 100.0, 1e4], "bfloat16": [9.0, 88.7, 1e4, 1e30]}[dtype]
    saturated = np.array([[s * b for b in big] for s in (1, -1)])
    rows = {
        "empty-batch": (rng.normal(size=(0, 4)), np.zeros((0, 4)), None),
        "unbatched": (rng.normal(size=5) * 3, (rng.random(5) < 0.5) * 1.0, None),
        "one-class": (rng.normal(size=(3, 1)) * 3, np.array([[1.0], [0.0], [1.0]]), None),
        "n-equals-c": (rng.normal(size=(6, 6)) * 3, (rng.random((6, 6)) < 0.5) * 1.0,
                       rng.random(6)),
        "saturated-agree": (saturated, (saturated > 0) * 1.0, None),
        "saturated-disagree": (saturated, (saturated < 0) * 1.0, None),
        "tiny-logits": (rng.choice([-1, 1], (4, 5)) * 10.0 ** rng.uniform(-9, -6, (4, 5)),
                        (rng.random((4, 5)) < 0.5) * 1.0, None),
        "zero-weights": (rng.normal(size=(3, 4)), np.ones((3, 4)), np.zeros(4)),
        "signed-weights": (rng.normal(size=(3, 4)) * 4, (rng.random((3, 4)) < 0.5) * 1.0,
                           np.array([-1.0, 0.0, 0.5, 2.0])),
        "large-classes": (rng.normal(size=(2, 4096)) * 6, (rng.random((2, 4096)) < 0.2) * 1.0,
                          rng.random(4096)),
        "large-sum": (np.full((512, 4), -3e4), np.ones((512, 4)), None),
        "soft-targets": (rng.normal(size=(4, 6)) * 3, rng.random((4, 6)), None),
    }
    cases = []
    for name, (x, y, w) in rows.items():
        args = {"input": round_to(x, dtype), "target": round_to(y, dtype),
                "weight": None if w is None else round_to(w, dtype)}
        out_shape = output_shape(x.shape, reduction)
        g = rng.uniform(-3, 3, out_shape) if out_shape else np.array(rng.choice([-2.5, 0.75]))
        case = Case(dtype, args, {"reduction": reduction}, {}, (name,),
                    grad_output=round_to(g, dtype))
        cases.append((name, case))
    return cases


def soft_margin_invalid():
    x, y = np.zeros((2, 4)), np.zeros((2, 4))
    calls = [
        ("target-shape", "target has shape (2, 5) but input has (2, 4)",
         {"input": x, "target": np.zeros((2, 5)), "weight": None}, "mean"),
        ("weight-size", "weight has 3 entries but there are 4 classes",
         {"input": x, "target": y, "weight": np.ones(3)}, "mean"),
        ("unknown-reduction", "reduction 'avg' is not one of none, sum, mean",
         {"input": x, "target": y, "weight": None}, "avg"),
    ]
    return [InvalidCall(i, reason, Case("float32", args, {"reduction": red}))
            for i, reason, args, red in calls]


GRID = st.integers(-12, 12).map(lambda k: k / 4)  # exact kinks: 1 - x_j + x_i == 0


def _label_rows(draw, shape):
    """Targets: per row some labels (repeats allowed), then -1, then leftovers in [-1, C)."""
    classes = shape[-1]
    rows = shape[0] if len(shape) == 2 else 1
    wide = classes > 64
    out = np.full((rows, classes), -1, dtype=np.int64)
    for n in range(rows):
        count = draw(st.integers(0, min(classes, 6) if wide else classes), label="labels")
        labels = draw(st.lists(st.integers(0, classes - 1), min_size=count, max_size=count))
        out[n, :count] = labels
        if count + 1 < classes and not wide:
            rest = draw(st.lists(st.integers(-1, classes - 1), min_size=classes - count - 1,
                                 max_size=classes - count - 1), label="after terminator")
            out[n, count + 1:] = rest
    return out.reshape(shape)


@st.composite
def margin_cases(draw, variant):
    """Random multilabel_margin_loss cases for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    shape, kind = batch_shape(draw, wide_rows=1)
    grid = draw(st.booleans(), label="grid values")
    if grid:
        x, regime = round_to(float_array(draw, shape, GRID, lambda rng, n:
                                         rng.integers(-12, 13, n) / 4), dtype), "grid"
    else:
        x, regime = logits(draw, shape, dtype)
    target = _label_rows(draw, shape)
    layouts = draw(layouts_for(["input", "target"], [shape, shape]), label="layouts")
    args = {"input": x, "target": target}
    for name, layout in layouts.items():
        if layout == "expanded":
            args[name] = make_expandable(args[name])
    case = Case(dtype, args, {"reduction": reduction}, layouts,
                (kind, regime) + saturation_tags(x, dtype) + _layout_tags(layouts))
    case.grad_output = upstream_gradient(draw, output_shape(shape, reduction), dtype)
    return case


def margin_edges(variant, rng):
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    wide_target = np.full((2, 4096), -1)
    wide_target[:, :3] = [[0, 4095, 17], [2048, 2048, 5]]
    rows = {
        "empty-batch": (np.zeros((0, 4)), np.zeros((0, 4), dtype=np.int64)),
        "unbatched": (rng.normal(size=5), np.array([3, 0, -1, 4, 4])),
        "all-padding": (rng.normal(size=(3, 4)), np.full((3, 4), -1)),
        "every-class-listed": (rng.normal(size=(2, 4)), np.array([[0, 1, 2, 3], [3, 2, 1, 0]])),
        "repeated-labels": (rng.normal(size=(2, 5)), np.array([[1, 1, 1, -1, 0],
                                                               [4, 2, 4, 2, -1]])),
        "after-terminator": (rng.normal(size=(2, 5)), np.array([[2, -1, 0, 1, 3],
                                                                [-1, 4, 3, 2, 1]])),
        "exact-kinks": (np.array([[0.0, 1.0, 2.0, -1.0], [0.5, -0.5, 1.5, 0.5]]),
                        np.array([[1, -1, 0, 0], [0, 3, -1, 2]])),
        "saturated": (np.array([[1e4, -1e4, 3e4, 0.0]]), np.array([[1, 0, -1, 0]])),
        "large-classes": (rng.normal(size=(2, 4096)) * 3, wide_target),
    }
    cases = []
    for name, (x, t) in rows.items():
        args = {"input": round_to(x, dtype), "target": np.asarray(t, dtype=np.int64)}
        out_shape = output_shape(x.shape, reduction)
        g = rng.uniform(-3, 3, out_shape) if out_shape else np.array(rng.choice([-2.5, 0.75]))
        cases.append((name, Case(dtype, args, {"reduction": reduction}, {}, (name,),
                                 grad_output=round_to(g, dtype))))
    return cases


def margin_invalid():
    x = np.zeros((2, 4))
    calls = [
        ("target-too-large", "target 4 is not a class of 4 (valid: -1 terminator, 0..3)",
         np.array([[0, 4, -1, 0], [1, -1, 0, 0]]), "mean"),
        ("target-below-minus-one", "target -2 is neither a class nor the -1 terminator",
         np.array([[0, -2, -1, 0], [1, -1, 0, 0]]), "mean"),
        ("target-shape", "target has shape (2, 3) but input has (2, 4)",
         np.array([[0, -1, 0], [1, -1, 0]]), "mean"),
        ("unknown-reduction", "reduction 'avg' is not one of none, sum, mean",
         np.array([[0, -1, 0, 0], [1, -1, 0, 0]]), "avg"),
    ]
    return [InvalidCall(i, reason, Case("float32", {"input": x, "target": t}, {"reduction": r}))
            for i, reason, t, r in calls]


PADDINGS = (-1, -100, "num_classes")


@st.composite
def multi_hot_cases(draw, variant):
    """Random label lists of different lengths, padded (array form) or ragged (list form)."""
    form = variant.option_dict()["form"]
    classes = draw(st.one_of(st.integers(1, 12), st.integers(4096, 5000)), label="num_classes")
    rows = draw(st.one_of(st.integers(0, 8), st.integers(100, 300)), label="rows")
    padding = draw(st.sampled_from(PADDINGS), label="padding_value")
    padding = classes if padding == "num_classes" else padding
    lists = draw(st.lists(st.lists(st.integers(0, classes - 1), max_size=8),
                          min_size=rows, max_size=rows), label="label lists")
    tags = ["all-padding-row"] if any(not row for row in lists) else []
    if form == "padded":
        width = draw(st.integers(max((len(r) for r in lists), default=0), 10), label="width")
        labels = np.full((rows, width), padding, dtype=np.int64)
        for n, row in enumerate(lists):
            # padding may sit anywhere in the row, not only at its end
            positions = sorted(draw(st.permutations(range(width)))[:len(row)])
            labels[n, positions] = row
        args = {"labels": labels, "num_classes": classes}
    else:
        args = {"labels": lists, "num_classes": classes}
    options = {} if padding == -1 else {"padding_value": padding}
    if any(len(set(row)) < len(row) for row in lists):
        tags.append("repeated-labels")
    return Case("exact", args, options, {}, tuple(tags) + (f"padding={padding}",))


def multi_hot_edges(variant, rng):
    form = variant.option_dict()["form"]
    rows = {
        "seed-example": ([[0, 2], [1, 2, 0]], 3),
        "seed-example-wider": ([[0, 2], [1]], 3),
        "empty-batch": ([], 4),
        "all-padding": ([[], [], []], 5),
        "repeats": ([[1, 1, 3], [0, 0, 0]], 4),
        "one-class": ([[0], [], [0, 0]], 1),
    }
    cases = []
    for name, (lists, classes) in rows.items():
        if form == "padded":
            width = max((len(r) for r in lists), default=0)
            labels = np.full((len(lists), width), -1, dtype=np.int64)
            for n, row in enumerate(lists):
                labels[n, :len(row)] = row
        else:
            labels = lists
        cases.append((name, Case("exact", {"labels": labels, "num_classes": classes}, {}, {},
                                 (name,))))
    return cases


def multi_hot_invalid():
    calls = [
        ("label-too-large", "label 3 with num_classes=3", [[0, 3]], 3),
        ("negative-label", "label -2 is neither a class nor the padding value -1", [[0, -2]], 3),
        ("label-too-large-padded", "label 5 with num_classes=4",
         np.array([[1, 5, -1]], dtype=np.int64), 4),
    ]
    return [InvalidCall(i, reason, Case("exact", {"labels": labels, "num_classes": c}))
            for i, reason, labels, c in calls]
