"""The multi-label family: multilabel_soft_margin_loss, multilabel_margin_loss, multi_hot.

Tolerances (see conformance/accuracy.py for the rule):

- multilabel_soft_margin_loss, value: S = sum of |w| (softplus(x) + |y x|) / C over the terms
  reduced (the magnitudes of softplus(x) - y x, the form with the most cancellation among the
  standard ones); depth 10 (exp and log1p count 2 each, then add, multiply, subtract, weight,
  divide by C, divide by N). Underflow: each term with a nonzero intermediate below the
  smallest normal number counts max(1, |w_c|) / C subnormal units, a sample whose value is
  below it one more, and a reduction adds (a mean: averages) the samples' counts.
- its gradients: input |g w| (sigmoid(x) + |y|) / (C N'), target |g w| (softplus(x) +
  softplus(-x)) / (C N') (the magnitudes of log sigmoid(x) - log sigmoid(-x), which is how
  autograd differentiates torch's formula), weight the sum over the batch of |g| (softplus(x)
  + |y x|) / (C N'); N' is N for mean, else 1; depth 10.
- multilabel_margin_loss, value: S = sum over counted pairs of (1 + |x_j| + |x_i|) / C; depth 4;
  summed sequentially (torch's CPU forward adds a sample's up to K (C - K) hinges in one loop:
  41 ulp in float64 at 4,096 classes, quick profile seed 14), then over the batch.
  Gradient: S = g / (C N') times the number of active pairs touching the class, summed
  sequentially (torch adds +-g / (C N') once per pair in a loop, so up to K (C - 1) terms),
  plus one jump g / (C N') for every pair whose hinge lies within rounding distance of its
  kink, where either side of the kink is right.
- multi_hot: exact.
"""

from __future__ import annotations

import numpy as np

from loss_reference import multilabel as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..cases import Case
from . import SpeedLadder, Spec, Variant, reduction_variants
from .speed import (MATRIX_SIZES, bytes_moved, class_weights, ladder, normal_values,
                    typical_case, variant)
from .multilabel_cases import (margin_cases, margin_edges, margin_invalid, multi_hot_cases,
                               multi_hot_edges, multi_hot_invalid, output_shape,
                               soft_margin_cases, soft_margin_edges, soft_margin_invalid)

DEPTH_SOFT_MARGIN = 10
DEPTH_MARGIN = 4


def _variants():
    return reduction_variants()


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
    return (np.full(x.shape[:-1] + (1,), float(g)),
            max(_batch(x.shape), 1) if reduction == "mean" else 1)


# Speed ladders (conformance/timing.py): the (rows, classes) ladder of speed.py, typical inputs,
# and the byte and work counts of a roofline. Typical calls use reduction='mean', upstream
# gradient 1; the variants reduction='none' (and a class weight) are timed at the medium rung.
SPEED_SIZES = MATRIX_SIZES


def _speed_output(case):
    return output_shape(case.args["input"].shape, case.options["reduction"])


def _speed_bytes(case, backward, read):
    """Input (and the others in ``read``) read, the output written; backward: grad_input."""
    output = int(np.prod(output_shape(case.args["input"].shape, case.options["reduction"])))
    return bytes_moved(case, backward, read, output)


# --- multilabel_soft_margin_loss -----------------------------------------------------------------


def _soft_margin_reference(case):
    a = case.args
    return ref.multilabel_soft_margin_loss(a["input"], a["target"], a["weight"],
                                           case.options["reduction"], format_of(case.dtype))


@np.errstate(over="ignore", invalid="ignore", under="ignore")
def _soft_margin_magnitude(case):
    x, y, w = case.args["input"], case.args["target"], case.args["weight"]
    classes = x.shape[-1]
    w = np.ones(classes) if w is None else np.abs(w)
    terms = w * (_softplus(x) + np.abs(y * x))
    per_sample = np.sum(terms, axis=-1) / classes
    underflow = _soft_margin_underflow(x, y, w, terms, per_sample, format_of(case.dtype))
    reduction = case.options["reduction"]
    if reduction == "none":
        return Magnitude(per_sample, classes, DEPTH_SOFT_MARGIN, amplification=underflow)
    divisor = _batch(x.shape) if reduction == "mean" and x.size else 1
    return Magnitude(np.array(np.sum(per_sample) / divisor), max(x.size, 1), DEPTH_SOFT_MARGIN,
                     amplification=float(np.sum(underflow)) / divisor)


def _soft_margin_underflow(x, y, w, terms, per_sample, fmt):
    """Per sample, the subnormal units its value can lose (Magnitude.amplification): a term
    with a nonzero intermediate below the smallest normal number (log sigmoid(+-x), its
    product with y or 1 - y, the weighted term) errs by up to a unit times |w_c| (the weight
    multiplies last), 1 / C of it after the division by C; a sample whose own value is below
    it loses one more unit in that division. A reduction adds the samples' losses: a 'sum' of
    N samples whose terms each round to the subnormal grid errs by N of them."""
    tiny = 2.0 ** fmt.min_exponent

    def below(values):
        return (values != 0) & (np.abs(values) < tiny)

    small = (below(_softplus(-np.abs(x))) | below(y * _softplus(-x))
             | below((1 - y) * _softplus(x)) | below(terms))
    per_term = np.where(small & (w != 0), np.maximum(1.0, w), 0.0)
    return np.sum(per_term, axis=-1) / max(x.shape[-1], 1) + below(per_sample)


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
    x = normal_values(size, dtype, rng)
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
    variants=(("weighted", variant(_speed_output, arrays={"weight": class_weights})),
              ("none", variant(_speed_output, reduction="none"))),
    inputs="logits N(0,1), multi-hot targets (a tenth positive), no weight, 'mean'",
)

SOFT_MARGIN = Spec(
    name="multilabel_soft_margin_loss", family="multilabel",
    positional=("input", "target"), keyword_arrays=("weight",),
    variants=_variants(), cases=soft_margin_cases, edge_cases=soft_margin_edges,
    invalid_calls=soft_margin_invalid, reference=_soft_margin_reference,
    magnitude=_soft_margin_magnitude, differentiable=("input", "target", "weight"),
    reference_grad=_soft_margin_reference_grad, grad_magnitudes=_soft_margin_grad_magnitudes,
    speed=SOFT_MARGIN_SPEED,
)


# --- multilabel_margin_loss ----------------------------------------------------------------------


def _margin_reference(case):
    return ref.multilabel_margin_loss(case.args["input"], case.args["target"],
                                      case.options["reduction"], format_of(case.dtype))


def _margin_pair_scale(case):
    """Per counted pair (N, K, C): 1 + |x_j| + |x_i|, and the counted mask."""
    x, x_label, counted = ref.counted_pairs(case.args["input"], case.args["target"])
    return counted * (1 + np.abs(x_label)[:, :, None] + np.abs(x)[:, None, :]), counted


def _margin_magnitude(case):
    x = case.args["input"]
    classes = x.shape[-1]
    pairs, _ = _margin_pair_scale(case)
    per_sample = pairs.sum(axis=(1, 2)) / classes
    # torch adds a sample's K C hinges in one loop (sequentially); the batch's sum then adds
    # at most N - 1 units more, within sequential(K C + N)
    terms = max(pairs[0].size if pairs.size else 1, 1)
    reduction = case.options["reduction"]
    if reduction == "none":
        return Magnitude(per_sample.reshape(x.shape[:-1]), terms, DEPTH_MARGIN,
                         summation="sequential")
    total = per_sample.sum() / (_batch(x.shape) if reduction == "mean" and x.size else 1)
    return Magnitude(np.array(total), terms + _batch(x.shape), DEPTH_MARGIN,
                     summation="sequential")


def _margin_reference_grad(case):
    return ref.multilabel_margin_loss_grad(case.grad_output, case.args["input"],
                                           case.args["target"], case.options["reduction"],
                                           format_of(case.dtype))


def _margin_grad_magnitudes(case):
    x = case.args["input"]
    classes = x.shape[-1]
    g, divisor = _upstream_magnitude(case)
    g = np.atleast_2d(g.reshape(-1, 1)) if x.ndim == 2 else g.reshape(1, 1)
    x2, x_label, counted = ref.counted_pairs(x, case.args["target"])
    labels, _, _ = ref.label_lists(case.args["target"])
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
    return Case(dtype, {"input": normal_values(size, dtype, rng), "target": target},
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
    kernel=_hinge_kernel, variants=(("none", variant(_speed_output, reduction="none")),),
    inputs="logits N(0,1), 1 to 7 labels per row then -1, 'mean'",
)

MARGIN = Spec(
    name="multilabel_margin_loss", family="multilabel",
    positional=("input", "target"), keyword_arrays=(),
    variants=_variants(), cases=margin_cases, edge_cases=margin_edges,
    invalid_calls=margin_invalid, reference=_margin_reference,
    magnitude=_margin_magnitude, differentiable=("input",),
    reference_grad=_margin_reference_grad, grad_magnitudes=_margin_grad_magnitudes,
    speed=MARGIN_SPEED,
)


# --- multi_hot -----------------------------------------------------------------------------------


def _multi_hot_reference(case):
    return ref.multi_hot(case.args["labels"], case.args["num_classes"],
                         case.options.get("padding_value", -1))


LABELS_PER_ROW = 8  # multi_hot's typical input: up to 8 labels per row, padded with -1


def _multi_hot_speed_case(size, dtype, rng):
    """Padded labels: 1 to 8 per row of ``size``'s (rows, classes), the rest -1."""
    rows, classes = size
    labels = rng.integers(0, classes, (rows, LABELS_PER_ROW))
    labels[np.arange(LABELS_PER_ROW) >= rng.integers(1, LABELS_PER_ROW + 1, rows)[:, None]] = -1
    return typical_case("exact", {"labels": labels, "num_classes": classes}, {})


def _multi_hot_bytes(case, backward):
    """The labels read, a (rows, classes) output of 8-byte elements (int64) written."""
    return int(case.args["labels"].nbytes + case.args["labels"].shape[0]
               * case.args["num_classes"] * 8)


MULTI_HOT_SPEED = ladder(
    _multi_hot_speed_case, read=("labels",), kernel="store", differentiated=(),
    elements=lambda case: int(case.args["labels"].shape[0] * case.args["num_classes"]),
    dtypes=("exact",), moved=_multi_hot_bytes,
    inputs="padded labels, 1 to 8 per row, -1 after them")

MULTI_HOT = Spec(
    name="multi_hot", family="multilabel",
    positional=("labels", "num_classes"), keyword_arrays=(),
    variants=(Variant("exact", (("form", "lists"),)), Variant("exact", (("form", "padded"),))),
    cases=multi_hot_cases, edge_cases=multi_hot_edges, invalid_calls=multi_hot_invalid,
    reference=_multi_hot_reference, exact=True, speed=MULTI_HOT_SPEED,
)

SPECS = (SOFT_MARGIN, MARGIN, MULTI_HOT)
