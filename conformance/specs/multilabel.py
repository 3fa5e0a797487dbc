"""The multi-label family: multilabel_soft_margin_loss, multilabel_margin_loss, multi_hot.

Tolerances (see conformance/accuracy.py for the rule):

- multilabel_soft_margin_loss, value: S = sum of |w| (softplus(x) + |y x|) / C over the terms
  reduced (the magnitudes of softplus(x) - y x, the form with the most cancellation among the
  standard ones); depth 10 (exp and log1p count 2 each, then add, multiply, subtract, weight,
  divide by C, divide by N).
- its gradients: input |g w| (sigmoid(x) + |y|) / (C N'), target |g w| (softplus(x) +
  softplus(-x)) / (C N') (the magnitudes of log sigmoid(x) - log sigmoid(-x), which is how
  autograd differentiates torch's formula), weight the sum over the batch of |g| (softplus(x)
  + |y x|) / (C N'); N' is N for mean, else 1; depth 10.
- multilabel_margin_loss, value: S = sum over counted pairs of (1 + |x_j| + |x_i|) / C; depth 4.
  Gradient: S = g / (C N') times the number of active pairs touching the class, summed
  sequentially (torch adds +-g / (C N') once per pair in a loop, so up to K (C - 1) terms),
  plus one jump g / (C N') for every pair whose hinge lies within rounding distance of its
  kink, where either side of the kink is right.
- multi_hot: exact.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
from hypothesis import strategies as st

from loss_reference import multilabel as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..cases import (Case, batch_shape, float_arrays, layouts_for, logits, make_expandable,
                     round_to, saturation_tags, upstream_gradient)
from . import InvalidCall, SpeedLadder, Spec, Variant

REDUCTIONS = ("none", "sum", "mean")
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")
DEPTH_SOFT_MARGIN = 10
DEPTH_MARGIN = 4


def _variants():
    return tuple(Variant(d, (("reduction", r),)) for d in FLOAT_DTYPES for r in REDUCTIONS)


def _output_shape(input_shape, reduction):
    if reduction != "none":
        return ()
    return tuple(input_shape[:-1])


def _batch(shape):
    return shape[0] if len(shape) == 2 else 1


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    # exp(-softplus(-x)) keeps the relative accuracy of tiny sigmoids (tanh would round to 0).
    return np.exp(-_softplus(-x))


def _upstream_magnitude(case):
    """|g_n| per sample (broadcastable to the input) and the mean divisor."""
    x = case.args["input"]
    reduction = case.options["reduction"]
    g = np.abs(np.asarray(case.grad_output, dtype=np.float64))
    if reduction == "none":
        return g.reshape(x.shape[:-1])[..., None], 1
    return np.full(x.shape[:-1] + (1,), float(g)), (max(_batch(x.shape), 1) if reduction == "mean" else 1)


def _layout_tags(layouts):
    return tuple(sorted({f"layout-{v}" for v in layouts.values() if v != "contiguous"}))


# Speed ladders (conformance/timing.py): one size ladder for both losses, typical inputs, and
# the byte and work counts of a roofline. Timing uses reduction='mean', upstream gradient 1.
SPEED_SIZES = ((64, 10), (256, 1000), (4096, 1000), (1024, 32768))
_ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}
_NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16,
                 "bfloat16": ml_dtypes.bfloat16}


def _speed_logits(size, dtype, rng):
    """Standard normal logits holding dtype values (a cast rounds them: round_to is too slow
    for the 32M values of the largest size, and normal values never reach its clamping)."""
    wide = np.float64 if dtype == "float64" else np.float32
    return rng.standard_normal(size, dtype=wide).astype(_NUMPY_DTYPES[dtype]).astype(np.float64)


def _speed_output_elements(case):
    return int(np.prod(_output_shape(case.args["input"].shape, case.options["reduction"])))


def _speed_bytes(case, backward, read):
    """The arrays named in ``read`` read once (floats in the dtype, int64 targets 8 bytes), the
    output written once; with backward also the upstream gradient read and grad_input written
    (input is the one argument a training step differentiates)."""
    item = _ITEMSIZE[case.dtype]
    arrays = [case.args[n] for n in read if case.args.get(n) is not None]
    inputs = sum(a.size * (item if a.dtype.kind == "f" else a.itemsize) for a in arrays)
    outputs = _speed_output_elements(case) * item
    if backward:
        outputs += (_speed_output_elements(case) + case.args["input"].size) * item
    return int(inputs + outputs)


# --- multilabel_soft_margin_loss -----------------------------------------------------------------

WEIGHTINGS = ("none", "uniform", "non-uniform", "with-zeros", "signed")


def _weights(draw, classes, dtype, kind):
    if kind == "none":
        return None
    if kind == "uniform":
        return round_to(np.full(classes, draw(st.floats(0.1, 4), label="weight value")), dtype)
    low = {"non-uniform": 0.05, "with-zeros": 0.0, "signed": -1.0}[kind]
    elements = st.floats(low, 3) if kind != "with-zeros" else st.sampled_from([0.0, 0.5, 1.0, 2.5])
    values = draw(float_arrays((classes,), elements,
                               lambda rng, n: rng.uniform(low, 3, n), label="weight"))
    return round_to(values, dtype)


@st.composite
def soft_margin_cases(draw, variant):
    """Random multilabel_soft_margin_loss cases for one dtype and reduction."""
    dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
    shape, kind = draw(batch_shape())
    classes = shape[-1]
    x, regime = draw(logits(shape, dtype))
    soft = draw(st.booleans(), label="soft targets") and draw(st.booleans())
    if soft:
        y = draw(float_arrays(shape, st.floats(0, 1), lambda rng, n: rng.random(n), "target"))
    else:
        p = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), label="positive rate")
        y = draw(float_arrays(shape, st.sampled_from([0.0, 1.0]),
                              lambda rng, n: (rng.random(n) < p) * 1.0, "target"))
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
    case.grad_output = upstream_gradient(draw, _output_shape(shape, reduction), dtype)
    return case


def _soft_margin_edges(variant, rng):
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
        out_shape = _output_shape(x.shape, reduction)
        g = rng.uniform(-3, 3, out_shape) if out_shape else np.array(rng.choice([-2.5, 0.75]))
        case = Case(dtype, args, {"reduction": reduction}, {}, (name,),
                    grad_output=round_to(g, dtype))
        cases.append((name, case))
    return cases


def _soft_margin_invalid():
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


def _soft_margin_reference(case):
    a = case.args
    return ref.multilabel_soft_margin_loss(a["input"], a["target"], a["weight"],
                                           case.options["reduction"], format_of(case.dtype))


def _soft_margin_magnitude(case):
    x, y, w = case.args["input"], case.args["target"], case.args["weight"]
    classes = x.shape[-1]
    w = np.ones(classes) if w is None else np.abs(w)
    per_sample = np.sum(w * (_softplus(x) + np.abs(y * x)), axis=-1) / classes
    reduction = case.options["reduction"]
    if reduction == "none":
        return Magnitude(per_sample, classes, DEPTH_SOFT_MARGIN)
    total = np.sum(per_sample) / (_batch(x.shape) if reduction == "mean" and x.size else 1)
    return Magnitude(np.array(total), max(x.size, 1), DEPTH_SOFT_MARGIN)


def _soft_margin_reference_grad(case):
    a = case.args
    return ref.multilabel_soft_margin_loss_grad(case.grad_output, a["input"], a["target"],
                                                a["weight"], case.options["reduction"],
                                                format_of(case.dtype))


def _soft_margin_grad_magnitudes(case):
    x, y, w = case.args["input"], case.args["target"], case.args["weight"]
    classes = x.shape[-1]
    g, divisor = _upstream_magnitude(case)
    w = np.ones(classes) if w is None else np.abs(w)
    scale = g * w / (classes * divisor)
    # Autograd starts from g / (C N'): if that underflows, the factors after it (|w| times the
    # derivative) carry its absolute error along.
    d_input, d_target = _sigmoid(x) + np.abs(y), _softplus(x) + _softplus(-x)
    out = {
        "input": Magnitude(scale * d_input, 1, DEPTH_SOFT_MARGIN,
                           amplification=np.maximum(1, w) * np.maximum(1, d_input)),
        "target": Magnitude(scale * d_target, 1, DEPTH_SOFT_MARGIN,
                            amplification=np.maximum(1, w) * np.maximum(1, d_target)),
    }
    if case.args["weight"] is not None:
        d_weight = _softplus(x) + np.abs(y * x)
        terms = g * d_weight / (classes * divisor)
        out["weight"] = Magnitude(np.atleast_2d(terms).sum(axis=0), _batch(x.shape),
                                  DEPTH_SOFT_MARGIN,
                                  amplification=np.atleast_2d(np.maximum(1, d_weight)).sum(axis=0))
    return out


def _soft_margin_speed_case(size, dtype, rng):
    """Typical training inputs: normal logits, multi-hot targets (~10% positives), no weight."""
    x = _speed_logits(size, dtype, rng)
    y = (rng.random(size, dtype=np.float32) < 0.1).astype(np.float64)
    return Case(dtype, {"input": x, "target": y, "weight": None}, {"reduction": "mean"}, {},
                ("speed",), grad_output=np.array(1.0))


def _softplus_kernel(x):
    """The loss's elementwise work alone: one exp and one log1p per element (softplus)."""
    import torch

    return torch.log1p(torch.exp(-x.abs()))


SOFT_MARGIN_SPEED = SpeedLadder(
    sizes=SPEED_SIZES, case=_soft_margin_speed_case,
    bytes_moved=lambda case, backward: _speed_bytes(case, backward, ("input", "target", "weight")),
    elements=lambda case: int(case.args["input"].size),
    work="one exp and one log1p per element of input (softplus)", kernel=_softplus_kernel,
)

SOFT_MARGIN = Spec(
    name="multilabel_soft_margin_loss", family="multilabel",
    positional=("input", "target"), keyword_arrays=("weight",),
    variants=_variants(), cases=soft_margin_cases, edge_cases=_soft_margin_edges,
    invalid_calls=_soft_margin_invalid, reference=_soft_margin_reference,
    magnitude=_soft_margin_magnitude, differentiable=("input", "target", "weight"),
    reference_grad=_soft_margin_reference_grad, grad_magnitudes=_soft_margin_grad_magnitudes,
    speed=SOFT_MARGIN_SPEED,
)


# --- multilabel_margin_loss ----------------------------------------------------------------------

GRID = st.integers(-12, 12).map(lambda k: k / 4)  # exact kinks: 1 - x_j + x_i == 0


@st.composite
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
    shape, kind = draw(batch_shape(wide_rows=1))
    grid = draw(st.booleans(), label="grid values")
    if grid:
        x, regime = round_to(draw(float_arrays(shape, GRID, lambda rng, n:
                                               rng.integers(-12, 13, n) / 4)), dtype), "grid"
    else:
        x, regime = draw(logits(shape, dtype))
    target = draw(_label_rows(shape))
    layouts = draw(layouts_for(["input", "target"], [shape, shape]), label="layouts")
    args = {"input": x, "target": target}
    for name, layout in layouts.items():
        if layout == "expanded":
            args[name] = make_expandable(args[name])
    case = Case(dtype, args, {"reduction": reduction}, layouts,
                (kind, regime) + saturation_tags(x, dtype) + _layout_tags(layouts))
    case.grad_output = upstream_gradient(draw, _output_shape(shape, reduction), dtype)
    return case


def _margin_edges(variant, rng):
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
        out_shape = _output_shape(x.shape, reduction)
        g = rng.uniform(-3, 3, out_shape) if out_shape else np.array(rng.choice([-2.5, 0.75]))
        cases.append((name, Case(dtype, args, {"reduction": reduction}, {}, (name,),
                                 grad_output=round_to(g, dtype))))
    return cases


def _margin_invalid():
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


def _margin_reference(case):
    return ref.multilabel_margin_loss(case.args["input"], case.args["target"],
                                      case.options["reduction"], format_of(case.dtype))


def _margin_pair_scale(case):
    """Per counted pair (N, K, C): 1 + |x_j| + |x_i|, and the counted mask."""
    x, x_label, counted = ref._pairs(case.args["input"], case.args["target"])
    return counted * (1 + np.abs(x_label)[:, :, None] + np.abs(x)[:, None, :]), counted


def _margin_magnitude(case):
    x = case.args["input"]
    classes = x.shape[-1]
    pairs, _ = _margin_pair_scale(case)
    per_sample = pairs.sum(axis=(1, 2)) / classes
    terms = max(pairs[0].size if pairs.size else 1, 1)
    reduction = case.options["reduction"]
    if reduction == "none":
        return Magnitude(per_sample.reshape(x.shape[:-1]), terms, DEPTH_MARGIN)
    total = per_sample.sum() / (_batch(x.shape) if reduction == "mean" and x.size else 1)
    return Magnitude(np.array(total), max(pairs.size, 1), DEPTH_MARGIN)


def _margin_reference_grad(case):
    return ref.multilabel_margin_loss_grad(case.grad_output, case.args["input"],
                                           case.args["target"], case.options["reduction"],
                                           format_of(case.dtype))


def _margin_grad_magnitudes(case):
    x = case.args["input"]
    classes = x.shape[-1]
    g, divisor = _upstream_magnitude(case)
    g = np.atleast_2d(g.reshape(-1, 1)) if x.ndim == 2 else g.reshape(1, 1)
    x2, x_label, counted = ref._pairs(x, case.args["target"])
    labels, _, _ = ref._label_lists(case.args["target"])
    u = format_of(case.dtype).unit_roundoff
    z = 1 - x_label[:, :, None] + x2[:, None, :]
    # At an exact kink (z == 0) every evaluation order computes z = 0 exactly (each partial
    # result is representable), so torch's "inactive at 0" is decidable: no slack there.
    near_kink = counted & (np.abs(z) <= 4 * u * (1 + np.abs(x_label)[:, :, None]
                                                 + np.abs(x2)[:, None, :]))
    near_kink &= ~ref.exactly_at_kink(x_label[:, :, None], x2[:, None, :])
    jumps = near_kink.sum(axis=1).astype(np.float64)
    np.add.at(jumps, (np.arange(x2.shape[0])[:, None], labels), near_kink.sum(axis=2))
    # torch adds +-g/(C N') once per active pair: a sum of up to C equal terms, then times g.
    touching = near_kink | (counted & (z > 0))
    pairs = touching.sum(axis=1).astype(np.float64)
    np.add.at(pairs, (np.arange(x2.shape[0])[:, None], labels), touching.sum(axis=2))
    step = g / (classes * divisor)
    return {"input": Magnitude((step * pairs).reshape(x.shape), max(int(pairs.max(initial=1)), 1),
                               DEPTH_MARGIN, slack=(step * jumps).reshape(x.shape),
                               summation="sequential")}


def _margin_speed_case(size, dtype, rng):
    """Normal logits; per row 1 to 7 labels (mean 4, fewer than C; repeats allowed, as they are
    valid), then -1 to the end of the row; int64."""
    rows, classes = size
    width = max(min(7, classes - 1), 1)
    labels = rng.integers(0, classes, (rows, width))
    listed = np.arange(width) < rng.integers(1, width + 1, rows)[:, None]
    target = np.full(size, -1, dtype=np.int64)
    target[:, :width] = np.where(listed, labels, -1)
    return Case(dtype, {"input": _speed_logits(size, dtype, rng), "target": target},
                {"reduction": "mean"}, {}, ("speed",), grad_output=np.array(1.0))


def _margin_speed_elements(case):
    """Hinges evaluated: (labels before the first -1) x C, summed over rows."""
    t = np.atleast_2d(case.args["target"])
    listed = ~np.logical_or.accumulate(t == -1, axis=1)
    return int(listed.sum()) * t.shape[1]


def _hinge_kernel(x):
    """The loss's elementwise work alone: the hinge max(0, 1 - a + x), a = one label's logit."""
    import torch

    return torch.clamp_min(1 - x[..., :1] + x, 0)


MARGIN_SPEED = SpeedLadder(
    sizes=SPEED_SIZES, case=_margin_speed_case,
    bytes_moved=lambda case, backward: _speed_bytes(case, backward, ("input", "target")),
    elements=_margin_speed_elements,
    work="one hinge max(0, 1 - x[y_j] + x[i]) per listed label j and class i (labels x C per row)",
    kernel=_hinge_kernel,
)

MARGIN = Spec(
    name="multilabel_margin_loss", family="multilabel",
    positional=("input", "target"), keyword_arrays=(),
    variants=_variants(), cases=margin_cases, edge_cases=_margin_edges,
    invalid_calls=_margin_invalid, reference=_margin_reference,
    magnitude=_margin_magnitude, differentiable=("input",),
    reference_grad=_margin_reference_grad, grad_magnitudes=_margin_grad_magnitudes,
    speed=MARGIN_SPEED,
)


# --- multi_hot -----------------------------------------------------------------------------------

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


def _multi_hot_edges(variant, rng):
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


def _multi_hot_invalid():
    calls = [
        ("label-too-large", "label 3 with num_classes=3", [[0, 3]], 3),
        ("negative-label", "label -2 is neither a class nor the padding value -1", [[0, -2]], 3),
        ("label-too-large-padded", "label 5 with num_classes=4",
         np.array([[1, 5, -1]], dtype=np.int64), 4),
    ]
    return [InvalidCall(i, reason, Case("exact", {"labels": labels, "num_classes": c}))
            for i, reason, labels, c in calls]


def _multi_hot_reference(case):
    return ref.multi_hot(case.args["labels"], case.args["num_classes"],
                         case.options.get("padding_value", -1))


MULTI_HOT = Spec(
    name="multi_hot", family="multilabel",
    positional=("labels", "num_classes"), keyword_arrays=(),
    variants=(Variant("exact", (("form", "lists"),)), Variant("exact", (("form", "padded"),))),
    cases=multi_hot_cases, edge_cases=_multi_hot_edges, invalid_calls=_multi_hot_invalid,
    reference=_multi_hot_reference, exact=True,
)

SPECS = (SOFT_MARGIN, MARGIN, MULTI_HOT)
