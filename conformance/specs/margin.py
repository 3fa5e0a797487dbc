"""The margin family: margin_ranking_loss, hinge_embedding_loss, multi_margin_loss.

Contract (torch 2.13's documentation, with these decisions; torch's behaviour verified):

- margin_ranking_loss(input1, input2, target, margin=0): max(0, m - y (x1 - x2)) elementwise.
  The documentation says (N) or () and y = +-1; torch accepts any rank as long as the three
  tensors have the same number of dimensions (else RuntimeError, the fix of B42) and
  broadcasts shapes of that rank silently. Drawn: rank 0 to 2, all three the same shape; the
  edge cases also judge broadcasting (target (3, 1) with inputs (3, 4), input2 (1,)) against
  the broadcast formula, with gradients summed over the broadcast axes. torch does not check
  y: its formula is defined for every real y, so y = +-1 mostly and reals in [-2, 2] (0
  included) are drawn. Gradients for input1, input2 and target (torch differentiates all
  three). Integer tensors are accepted by torch, so they are not an invalid call.
- hinge_embedding_loss(input, target, margin=1): torch computes where(y != 1, max(0, m - x), 0)
  + where(y != -1, x, 0): x for y = 1, the hinge for y = -1 and, for any other y, both (x +
  max(0, m - x) = max(x, m)). Drawn: y = +-1 mostly, also 0, 2, -2, 0.5 and reals in [-2, 2].
  Any shape (rank 0 to 3), input and target the same (torch broadcasts others: outside the
  spec, neither drawn nor required to raise). Gradient for input only (the target enters
  through comparisons; torch gives it no gradient).
- multi_margin_loss(input, target, p=1, margin=1, weight=None): input (N, C) or (C,), C >= 1,
  target int64 (N,) or, for (C,), () or (1,) (the 'none' output has the target's shape);
  per sample sum_{i != y} w[y] max(0, m - x[y] + x[i])^p / C: the weight is indexed by the
  *target* class (verified: w = [1, 2, 3, 4], y = 3 scales the sample by 4). p is 1 or 2
  (others raise ValueError); the weight is 1-D of size C (other sizes and ranks raise) and any
  sign. torch differentiates input only: it raises when weight requires grad. torch 2.13 CPU
  has no float16 / bfloat16 kernel (reported as unsupported dtypes).
- Every loss: margin any real (0, negative, values no half format holds: torch rounds them);
  the default is used when the case leaves it out. 'mean' divides by the number of output
  elements (samples for multi_margin); the mean of none is nan, the sum 0.
- Kinks: at z == 0 exactly torch's gradient is the active side's for margin_ranking and
  hinge_embedding (clamp_min passes z >= 0) but 0 for multi_margin (its kernel tests z > 0);
  judged exactly where torch's own rounded z is exactly 0 too (the margin and x1 - x2 are
  numbers of the dtype). Within rounding distance of the kink otherwise, either side's
  gradient is accepted (slack: the jump, |g y| / N' or |g (x1 - x2)| / N', |g| / N',
  |g w[y]| / (C N') per hinge for p = 1; p = 2 has no jump).

Tolerances (conformance/accuracy.py; S per output element; N' = N for 'mean', else 1):

- margin_ranking_loss: S = sum of |m| + |y (x1 - x2)| over the hinges that are active or
  within rounding distance of 0 (torch rounds x1 - x2, the product and the sum; near 0 it may
  keep a rounding error where the exact hinge is 0), over N'; depth 5 (subtract, multiply,
  margin, add, divide); cascade summation over the elements. Gradients: |g y| / N' for the
  inputs, |g (x1 - x2)| / N' for the target, depth 4, plus the kink slack.
- hinge_embedding_loss: S = |x| for the x term plus |m| + |x| for hinges active or near 0, over
  N'; depth 4; cascade. Gradient: |g| / N', depth 2, plus the kink slack.
- multi_margin_loss: per hinge s = |m| + |x[y]| + |x[i]|, times |w[y]| and, for p = 2, by
  |z| + 2 u s (the square of a z with error u s); S = the sum over active or near hinges / C,
  over N'; depth 7 (margin, subtract, add, square, weight, divide by C, by N); *sequential*
  summation over C + N terms (torch's kernel adds the hinges of a sample in a loop in the
  input dtype, then the samples in a loop). Gradient: per class |g w[y]| (1, or 2 (|z| + s)
  for p = 2) / (C N'), the target class the sum of its row (sequential, C - 1 terms); depth 6.
- underflow: a term below the dtype's smallest normal errs absolutely by up to a subnormal
  unit (amplification: their count, over N' for a mean; for gradients max(1, |g| |w| slope)).
"""

from __future__ import annotations

import numpy as np

from loss_reference import margin as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..cases import Case
from ..properties import PERMUTATION_DOC, Property, class_permutation
from . import InvalidCall, Spec, reduction_variants
from .speed import (FLAT_SIZES, class_targets, class_weights, elementwise_output, ladder,
                    normal_values, output_of, rows_output, signs, typical_case, variant)
from .margin_cases import (hinge_cases, hinge_edges, multi_cases, multi_edges, ranking_cases,
                           ranking_edges, round_to)

DEPTH = {"margin_ranking_loss": 5, "hinge_embedding_loss": 4, "multi_margin_loss": 7}
GRAD_DEPTH = {"margin_ranking_loss": 4, "hinge_embedding_loss": 2, "multi_margin_loss": 6}
ARRAYS = {"margin_ranking_loss": ("input1", "input2", "target"),
          "hinge_embedding_loss": ("input", "target"),
          "multi_margin_loss": ("input", "target", "weight")}
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore"}


def _variants():
    return reduction_variants()


def _margin(name, case) -> float:
    return float(case.options.get("margin", ref.DEFAULT_MARGIN[name]))


def _in_format(value, dtype) -> np.ndarray:
    """Whether float64 values are numbers of the dtype (so torch's rounding of them is exact)."""
    value = np.asarray(value, np.float64)
    with np.errstate(**_QUIET):
        return np.isfinite(value) & (round_to(value, dtype) == value)


def _float(case, name):
    return np.asarray(case.args[name], np.float64)


# --- edge cases and invalid calls ----------------------------------------------------------------

def _edges(name):
    builders = {"margin_ranking_loss": ranking_edges, "hinge_embedding_loss": hinge_edges,
                "multi_margin_loss": multi_edges}

    cache = {}

    def edges(variant, rng):
        """The fixed catalogue of edge cases of one loss for one dtype and reduction (built once
        per variant and generator state: every test of the variant asks for it)."""
        key = (variant, repr(rng.bit_generator.state))
        if key not in cache:
            cache[key] = build(variant, rng)
        return list(cache[key])

    def build(variant, rng):
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        out = []
        for edge_id, arrays, options in builders[name](dtype, rng):
            args = {}
            for arg in ARRAYS[name]:
                value = arrays.get(arg)
                if value is None or value.dtype.kind == "i":
                    args[arg] = value
                else:
                    args[arg] = round_to(value, dtype)
            shape = _output_shape(name, args, reduction)
            g = rng.uniform(-3, 3, shape) if shape else np.array(rng.choice([-2.5, 0.75]))
            out.append((edge_id, Case(dtype, args, {"reduction": reduction, **options}, {},
                                      (edge_id,), grad_output=round_to(g, dtype))))
        return out

    return edges


def _invalid(name):
    def invalid_calls():
        """Calls torch 2.13 rejects (each verified), that a conforming candidate must reject."""
        x = np.zeros((2, 4))
        if name == "margin_ranking_loss":
            calls = [
                ("target-lower-rank", "target (2,) with inputs (2, 4): different numbers of "
                 "dimensions (B42)", {"input1": x, "input2": x, "target": np.ones(2)}, {}),
                ("input-shapes", "input1 (3,) and input2 (2,) do not broadcast",
                 {"input1": np.zeros(3), "input2": np.zeros(2), "target": np.ones(3)}, {}),
                ("unknown-reduction", "reduction 'avg' is not one of none, sum, mean",
                 {"input1": x, "input2": x, "target": np.ones((2, 4))}, {"reduction": "avg"}),
            ]
        elif name == "hinge_embedding_loss":
            calls = [
                ("target-shape", "target (2, 5) and input (2, 4) do not broadcast",
                 {"input": x, "target": np.ones((2, 5))}, {}),
                ("unknown-reduction", "reduction 'avg' is not one of none, sum, mean",
                 {"input": x, "target": np.ones((2, 4))}, {"reduction": "avg"}),
            ]
        else:
            t = np.array([0, 3])

            def call(call_id, reason, input=x, target=t, weight=None, **options):
                return (call_id, reason, {"input": input, "target": target, "weight": weight},
                        options)

            calls = [
                call("p-3", "p = 3: only 1 and 2 are supported", p=3),
                call("p-0", "p = 0: only 1 and 2 are supported", p=0),
                call("target-too-large", "target 4 with C = 4", target=np.array([0, 4])),
                call("target-negative", "target -1 is not a class", target=np.array([-1, 0])),
                call("target-size", "target (3,) for a batch of 2", target=np.array([0, 1, 2])),
                call("target-2d", "target (2, 1): must be 1-D", target=np.array([[0], [1]])),
                call("float-target", "target holds floats, not int64 class indices",
                     target=np.array([0.0, 1.0])),
                call("input-3d", "input (2, 3, 4): must be (C,) or (N, C)",
                     input=np.zeros((2, 3, 4))),
                call("no-classes", "input (2, 0): C = 0", input=np.zeros((2, 0))),
                call("weight-size", "weight has 3 entries but there are 4 classes",
                     weight=np.ones(3)),
                call("weight-2d", "weight (1, 4) must be 1-D", weight=np.ones((1, 4))),
                call("integer-input", "input is int64, not floating",
                     input=np.zeros((2, 4), np.int64)),
                call("unknown-reduction", "reduction 'avg' is not one of none, sum, mean",
                     reduction="avg"),
            ]
        out = []
        for call_id, reason, args, options in calls:
            out.append(InvalidCall(call_id, reason, Case("float32", args,
                                                          {"reduction": "mean", **options})))
        return out

    return invalid_calls


# --- shapes ------------------------------------------------------------------------------------

def _output_shape(name, args, reduction):
    if reduction != "none":
        return ()
    if name == "margin_ranking_loss":
        return np.broadcast_shapes(*(np.shape(args[n]) for n in ARRAYS[name]))
    if name == "multi_margin_loss":
        return np.shape(args["target"])
    return np.shape(args["input"])


# --- references ----------------------------------------------------------------------------------

def _reference(name):
    def reference(case):
        a, fmt, red, m = case.args, format_of(case.dtype), case.options["reduction"], \
            _margin(name, case)
        if name == "margin_ranking_loss":
            return ref.margin_ranking_loss(a["input1"], a["input2"], a["target"], m, red, fmt)
        if name == "hinge_embedding_loss":
            return ref.hinge_embedding_loss(a["input"], a["target"], m, red, fmt)
        return ref.multi_margin_loss(a["input"], a["target"], int(case.options.get("p", 1)), m,
                                     a.get("weight"), red, fmt)

    return reference


def _reference_grad(name):
    def reference_grad(case):
        a, fmt, red, m = case.args, format_of(case.dtype), case.options["reduction"], \
            _margin(name, case)
        g = case.grad_output
        if name == "margin_ranking_loss":
            return ref.margin_ranking_loss_grad(g, a["input1"], a["input2"], a["target"], m,
                                                red, fmt)
        if name == "hinge_embedding_loss":
            return ref.hinge_embedding_loss_grad(g, a["input"], a["target"], m, red, fmt)
        return ref.multi_margin_loss_grad(g, a["input"], a["target"],
                                          int(case.options.get("p", 1)), m, a.get("weight"),
                                          red, fmt)

    return reference_grad


# --- magnitudes ----------------------------------------------------------------------------------

def _reduced(name, scale, reduction, count, terms, tiny, summation="cascade"):
    """The Magnitude of a reduction of per-element magnitudes ``scale`` (tiny: the terms that
    may underflow)."""
    depth = DEPTH[name]
    if reduction == "none":
        return Magnitude(scale, terms, depth, summation=summation)
    divisor = max(count, 1) if reduction == "mean" else 1
    total_terms = terms if summation == "sequential" else max(count, 1)
    return Magnitude(np.array(np.sum(scale) / divisor), total_terms, depth,
                     amplification=float(np.sum(tiny)) / divisor, summation=summation)


def _rounding_distance(s, fmt):
    """How far from 0 a hinge may be for torch's rounded one to land on the other side: a few
    roundings of its terms (magnitudes s), and products that underflow (subnormal units)."""
    return 8 * fmt.unit_roundoff * s + 2 * fmt.smallest_subnormal


def _ranking_parts(case):
    """Broadcast float64 x1, x2, y, d = x1 - x2, z, s = |m| + |y d| and the near-0 mask."""
    x1, x2, y = np.broadcast_arrays(*(_float(case, n) for n in ARRAYS["margin_ranking_loss"]))
    m = _margin("margin_ranking_loss", case)
    fmt = format_of(case.dtype)
    with np.errstate(**_QUIET):
        d = x1 - x2
        z = m - y * d
        s = abs(m) + np.abs(y * d)
        near = np.abs(z) <= _rounding_distance(s, fmt)
    return x1, x2, y, d, z, s, near


@np.errstate(**_QUIET)
def _ranking_magnitude(case):
    _, _, _, _, z, s, near = _ranking_parts(case)
    fmt = format_of(case.dtype)
    scale = np.where((z > 0) | near, s, 0.0)
    return _reduced("margin_ranking_loss", scale, case.options["reduction"], z.size, 1,
                    scale < 2.0 ** fmt.min_exponent)


def _kink_slack_mask(near, exact_zero, decidable):
    """Where either side of a kink is accepted: near it, unless exactly on it and decidable."""
    return near & ~(exact_zero & decidable)


def _upstream(case, shape):
    return np.broadcast_to(np.abs(np.asarray(case.grad_output, np.float64)), shape)


def _sum_to(values, shape):
    """Sum a broadcast-shaped array over the axes an argument of ``shape`` was repeated on."""
    for axis, n in enumerate(shape):
        if n == 1 and values.shape[axis] != 1:
            values = values.sum(axis=axis, keepdims=True)
    return values


@np.errstate(**_QUIET)
def _ranking_grad_magnitudes(case):
    x1, x2, y, d, z, s, near = _ranking_parts(case)
    m = _margin("margin_ranking_loss", case)
    reduction = case.options["reduction"]
    divisor = max(z.size, 1) if reduction == "mean" else 1
    g = _upstream(case, z.shape) / divisor
    exact_zero = ref.ranking_sign(x1, x2, y, m) == 0
    decidable = bool(_in_format(m, case.dtype)) & _in_format(d, case.dtype)
    jump_at = _kink_slack_mask(near, exact_zero, decidable)
    active = (z >= 0) | near
    out = {}
    for name, slope in (("input1", np.abs(y)), ("input2", np.abs(y)), ("target", np.abs(d))):
        shape = np.shape(case.args[name])
        scale = np.where(active, g * slope, 0.0)
        slack = np.where(jump_at, g * slope, 0.0)
        terms = max(z.size // max(int(np.prod(shape)), 1), 1)
        out[name] = Magnitude(_sum_to(scale, shape), terms, GRAD_DEPTH["margin_ranking_loss"],
                              slack=_sum_to(slack, shape),
                              amplification=_sum_to(np.maximum(1, g * slope), shape))
    return out


def _hinge_parts(case):
    x, y = _float(case, "input"), _float(case, "target")
    m = _margin("hinge_embedding_loss", case)
    with np.errstate(**_QUIET):
        z = m - x
        near = (y != 1) & (np.abs(z) <= _rounding_distance(abs(m) + np.abs(x),
                                                            format_of(case.dtype)))
    return x, y, m, z, near


@np.errstate(**_QUIET)
def _hinge_magnitude(case):
    x, y, m, z, near = _hinge_parts(case)
    fmt = format_of(case.dtype)
    hinge = np.where((y != 1) & ((z > 0) | near), abs(m) + np.abs(x), 0.0)
    scale = np.where(y != -1, np.abs(x), 0.0) + hinge
    return _reduced("hinge_embedding_loss", scale, case.options["reduction"], x.size, 1,
                    scale < 2.0 ** fmt.min_exponent)


@np.errstate(**_QUIET)
def _hinge_grad_magnitudes(case):
    x, y, m, z, near = _hinge_parts(case)
    divisor = max(x.size, 1) if case.options["reduction"] == "mean" else 1
    g = _upstream(case, x.shape) / divisor
    # x == m exactly: x is a number of the dtype, so torch's m - x is exactly 0 too.
    slack = np.where(near & (z != 0), g, 0.0)
    return {"input": Magnitude(g, 1, GRAD_DEPTH["hinge_embedding_loss"], slack=slack,
                               amplification=np.maximum(1, g))}


def _multi_parts(case):
    """x (N, C), x[y] (N, 1), z, s per hinge, the non-target mask, near-0 mask, |w[y]| (N, 1)."""
    x = np.atleast_2d(_float(case, "input"))
    t = np.asarray(case.args["target"], np.int64).reshape(-1)
    rows = np.arange(x.shape[0])
    x_label = x[rows, t][:, None]
    other = np.ones(x.shape, dtype=bool)
    other[rows, t] = False
    m = _margin("multi_margin_loss", case)
    u = format_of(case.dtype).unit_roundoff
    weight = case.args.get("weight")
    w = np.ones(x.shape[1]) if weight is None else np.abs(np.asarray(weight, np.float64))
    with np.errstate(**_QUIET):
        z = m - x_label + x
        s = abs(m) + np.abs(x_label) + np.abs(x)
        near = other & (np.abs(z) <= _rounding_distance(s, format_of(case.dtype)))
    return x, z, s, other, near, w[t][:, None], m, u


@np.errstate(**_QUIET)
def _multi_magnitude(case):
    x, z, s, other, near, w, _, u = _multi_parts(case)
    fmt = format_of(case.dtype)
    p = int(case.options.get("p", 1))
    relevant = other & ((z > 0) | near)
    per_hinge = np.where(relevant, w * (s if p == 1 else s * (np.abs(z) + 2 * u * s)), 0.0)
    classes = x.shape[1]
    per_sample = per_hinge.sum(axis=1) / classes
    tiny = (relevant & (per_hinge < 2.0 ** fmt.min_exponent)).sum(axis=1)
    reduction = case.options["reduction"]
    if reduction == "none":
        return Magnitude(per_sample.reshape(np.shape(case.args["target"])), classes,
                         DEPTH["multi_margin_loss"], amplification=np.maximum(1, tiny)
                         .reshape(np.shape(case.args["target"])), summation="sequential")
    return _reduced("multi_margin_loss", per_sample, reduction, x.shape[0],
                    classes + x.shape[0], tiny, summation="sequential")


@np.errstate(**_QUIET)
def _multi_grad_magnitudes(case):
    x, z, s, other, near, w, m, _ = _multi_parts(case)
    p = int(case.options.get("p", 1))
    batch, classes = x.shape
    reduction = case.options["reduction"]
    divisor = classes * (max(batch, 1) if reduction == "mean" else 1)
    g = np.abs(np.asarray(case.grad_output, np.float64)).reshape(-1)
    g = (g if g.size == batch else np.full(batch, float(g[0]) if g.size else 0.0))[:, None]
    step = g * w / divisor
    relevant = other & ((z > 0) | near)
    slope = np.ones(x.shape) if p == 1 else 2 * (np.abs(z) + s)
    off = np.where(relevant, step * slope, 0.0)
    scale = np.where(other, off, off.sum(axis=1, keepdims=True))
    slack = np.zeros(x.shape)
    if p == 1:
        exact_zero = np.zeros(x.shape, dtype=bool)
        if near.any():
            label = x[np.arange(batch), np.asarray(case.args["target"]).reshape(-1)][:, None]
            exact_zero = ref.multi_sign(label, x, m) == 0
        jumps = _kink_slack_mask(near, exact_zero, bool(_in_format(m, case.dtype)))
        per = np.where(jumps, step, 0.0)
        slack = np.where(other, per, per.sum(axis=1, keepdims=True))
    amplification = np.maximum(1, g) * np.maximum(1, w) * np.maximum(1, slope)
    amplification = np.where(other, amplification,
                             np.where(other, amplification, 0).sum(axis=1, keepdims=True))
    shape = np.shape(case.args["input"])
    return {"input": Magnitude(scale.reshape(shape), max(classes - 1, 1),
                               GRAD_DEPTH["multi_margin_loss"], slack=slack.reshape(shape),
                               amplification=amplification.reshape(shape),
                               summation="sequential")}


MAGNITUDES = {"margin_ranking_loss": (_ranking_magnitude, _ranking_grad_magnitudes),
              "hinge_embedding_loss": (_hinge_magnitude, _hinge_grad_magnitudes),
              "multi_margin_loss": (_multi_magnitude, _multi_grad_magnitudes)}
CASES = {"margin_ranking_loss": ranking_cases, "hinge_embedding_loss": hinge_cases,
         "multi_margin_loss": multi_cases}
DIFFERENTIABLE = {"margin_ranking_loss": ("input1", "input2", "target"),
                  "hinge_embedding_loss": ("input",), "multi_margin_loss": ("input",)}


# multi_margin_loss's targets are classes (it has no ignore_index): a class permutation with its
# weight leaves the loss.
PROPERTIES = {"margin_ranking_loss": (), "hinge_embedding_loss": (),
              "multi_margin_loss": (Property("permutation", class_permutation(),
                                             PERMUTATION_DOC),)}


# --- speed ladders -------------------------------------------------------------------------------

def _ranking_speed_case(size, dtype, rng):
    """Two scores N(0,1) per pair, which should rank higher +-1, margin 0, 'mean'."""
    args = {"input1": normal_values(size, dtype, rng), "input2": normal_values(size, dtype, rng),
            "target": signs(size, rng)}
    return typical_case(dtype, args, {"reduction": "mean"})


def _hinge_speed_case(size, dtype, rng):
    """Distances |N(0,1)|, similar or not +-1, margin 1, 'mean'."""
    args = {"input": np.abs(normal_values(size, dtype, rng)), "target": signs(size, rng)}
    return typical_case(dtype, args, {"reduction": "mean"})


def _multi_speed_case(size, dtype, rng):
    """Logits N(0,1) and a class per row, p=1, margin 1, no weight, 'mean'."""
    rows, classes = size
    args = {"input": normal_values(size, dtype, rng),
            "target": class_targets(rows, classes, rng), "weight": None}
    return typical_case(dtype, args, {"reduction": "mean"})


RANKING_OUTPUT = output_of(elementwise_output, "input1")
SPEED = {
    "margin_ranking_loss": lambda: ladder(
        _ranking_speed_case, read=("input1", "input2", "target"), kernel="hinge",
        output=RANKING_OUTPUT, differentiated=("input1", "input2"), sizes=FLAT_SIZES,
        variants=(("margin", variant(RANKING_OUTPUT, margin=0.5)),
                  ("none", variant(RANKING_OUTPUT, reduction="none"))),
        inputs="scores N(0,1), targets +-1, margin 0, 'mean'"),
    "hinge_embedding_loss": lambda: ladder(
        _hinge_speed_case, read=("input", "target"), kernel="hinge",
        variants=(("none", variant(reduction="none")),),
        inputs="distances |N(0,1)|, targets +-1, margin 1, 'mean'"),
    "multi_margin_loss": lambda: ladder(
        _multi_speed_case, read=("input", "target", "weight"), kernel="hinge",
        output=rows_output,
        variants=(("weighted", variant(rows_output, arrays={"weight": class_weights})),
                  ("squared", variant(rows_output, p=2)),
                  ("none", variant(rows_output, reduction="none"))),
        inputs="logits N(0,1), a class per row, p=1, margin 1, no weight, 'mean'"),
}


def _spec(name):
    magnitude, grad_magnitudes = MAGNITUDES[name]
    return Spec(
        name=name, family="margin", positional=ARRAYS[name][:3 if name ==
                                                             "margin_ranking_loss" else 2],
        keyword_arrays=("weight",) if name == "multi_margin_loss" else (),
        variants=_variants(), cases=CASES[name], edge_cases=_edges(name),
        invalid_calls=_invalid(name), reference=_reference(name), magnitude=magnitude,
        differentiable=DIFFERENTIABLE[name], reference_grad=_reference_grad(name),
        grad_magnitudes=grad_magnitudes, properties=PROPERTIES[name], speed=SPEED[name](),
    )


SPECS = tuple(_spec(name) for name in ref.LOSSES)
