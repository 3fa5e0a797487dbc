"""The classification family: cross_entropy and nll_loss.

Contract (torch 2.13's documentation, with these decisions; torch's behaviour verified):

- input (C,) unbatched, (N, C) or (N, C, d1, ...) (drawn up to two extra axes); an index target
  has the input's shape without the class axis (0-d when unbatched), int64, each entry in
  [0, C) or equal to ignore_index (default -100; any int: -1, -300, C + 3, or a valid class
  such as 0, whose rows are then ignored). The output of 'none' has the target's shape.
- nll_loss reads input as log-probabilities (any real, -inf included): row loss -w_t x_t.
  cross_entropy: (1 - e) w_t nlp_t + (e / C) sum_c w_c nlp_c, nlp = -log_softmax(x) over the
  class axis, e = label_smoothing in [0, 1] (torch's formula: the smoothing term is weighted
  by each class's weight, ignored rows are left out of both terms).
- 'mean' with index targets is sum(row losses) / sum(w_t over the rows not ignored) (their
  count without weight), smoothing term included (torch divides both terms by that sum).
  The mean of no counted row is nan (every row ignored, or N = 0); a zero sum of weights
  gives IEEE's quotient of the exact sums (torch: (1 - e) A / 0 + (e / C) B / 0), and the
  gradient there is undefined (not judged). 'sum' of nothing is 0.
- cross_entropy with probability targets (float, the input's shape, drawn as distributions,
  one-hot rows and any values in [0, 1]): row loss sum_c w_c p'_c nlp_c with
  p' = (1 - e) p + e / C; 'mean' divides by the number of rows N d1 ... whatever the weight
  (torch's convention, B08: it differs from the index-target mean). ignore_index must keep
  its default with probability targets: torch rejects any other value, so must a candidate.
- weight (C,): any sign (torch accepts negative weights), zeros included. Gradients checked:
  the input's always; with probability targets (cross_entropy) also the target's,
  a_i (1 - e) w_c nlp_ic, and the weight's (when one is passed), sum_i a_i p'_ic nlp_ic, a_i
  the row's upstream gradient (divided by N d1 ... for 'mean'): torch 2.13 differentiates both
  (verified against these formulas in float64). With index targets torch differentiates
  neither weight nor target (an int64 target cannot require grad, and torch refuses a weight
  that does: "nll_loss_forward is not differentiable with respect to argument 'weight'"), so
  there only the input's gradient is checked (``differentiable_when``).
- Infinite logits: a -inf logit is a masked class (softmax 0). Its nlp is +inf, so a term
  w_c p'_c nlp_c (or the smoothing term w_c nlp_c) is +-inf when its coefficient is not 0,
  and contributes nothing when it is 0 (the limit as the logit goes to -inf; torch gives
  nan there: a known deviation). A +inf logit, or a row without a finite logit, has no
  log-softmax: its loss and gradient are nan (torch agrees). The gradient stays finite at a
  masked class (softmax 0). label_smoothing = 1 with an infinite nll term gives nan
  ((1 - e) inf), as torch. The target's and weight's gradients at a masked class multiply
  nlp = +inf by a (1 - e) w_c and by a_i p'_ic: the same rule, a zero coefficient (a zero
  upstream, a zero weight, e = 1, p'_c = 0) gives 0 (torch gives nan: known deviations), any
  other the infinity of its sign; the weight's sum over rows of +inf and -inf is nan. A row
  without a log-softmax makes its target gradient and the whole weight gradient nan.
- torch accepts label_smoothing < 0 and nan silently (as 0 and as a smoothing of nan): outside
  the documented range, never drawn, not required to raise; > 1 is rejected.

Tolerances (conformance/accuracy.py; nlp_c = lse - x_c, which torch's log_softmax computes as
(x_c - m) - log(sum_j exp(x_j - m)), m the row max: shift invariant, its error a few u (nlp_c +
1), the 1 because the log of a sum >= 1 errs by u absolutely; n_c = nlp_c + 1 below):

- cross_entropy value, per row: S = (1 - e) |w_t| n_t + (e / C) sum_c |w_c| n_c (index
  targets) or sum_c |w_c p'_c| n_c (probability targets); depth 10 (exp 2, the sum, log 2,
  two subtractions, the half-precision rounding of log_softmax's output, the weight, the
  smoothing factor, the division); terms C per row, M C for 'sum' and 'mean'. A mean by
  W = sum w_t uses (sum S + |A / W| sum |w_t|) / |W|, as the pointwise family.
- nll_loss value: S = |w_t x_t| per row, depth 4 (product, sum, division, rounding), the same
  mean rule.
- gradients: cross_entropy |a| (softmax_c (1 + nlp_c) K + (1 - e) |w_t| [c = t] + (e / C) |w_c|)
  with K = (1 - e) |w_t| + (e / C) sum |w| (index) or |a| (softmax_c (1 + nlp_c) sum |w p'| +
  |w_c p'_c|) (probabilities), a = g / divisor times sum |w_t| / |W| for a mean by W; the
  (1 + nlp_c) is softmax recomputed from a rounded log-probability, as torch's backward does;
  depth 10, terms C + M summed sequentially (torch's log_softmax backward sums the row's
  upstream gradients in a vectorised loop: seen 48 ulp at C = 4429 in float32). Probability
  targets: the target's |a| (1 - e) |w_c| n_c (a log-probability times factors: depth 10,
  terms C, the log-sum-exp's), the weight's sum_i |a_i p'_ic| n_ic (depth 10, terms M + C: the
  sum over rows and each row's log-sum-exp). nll_loss: |a w_t| at
  the target entry and exactly 0 elsewhere (ignored rows and other classes must be exactly 0: B06);
  depth 4.
- underflow: one subnormal unit per term reduced, times max(1, |w|), as the pointwise family.
- Non-finite results (masked classes, +inf logits, means over nothing) are judged exactly.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from loss_reference import classification as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..cases import Case, round_to
from ..properties import (PERMUTATION_DOC, Pair, Property, batch_split_property,
                          class_permutation, exact_sum, replaced)
from . import InvalidCall, SpeedLadder, Spec, reduction_variants
from .classification_cases import case_strategy, edge_strategy, from_rows, to_rows
from .llm import llm_cases
from .speed import (IGNORED_SHARE, MATRIX_SIZES, bytes_moved, class_weights, in_dtype,
                    log_softmax, normal_values, rows_output, typical_case, variant)

DEPTH = {"cross_entropy": 10, "nll_loss": 4}
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore"}


def _variants():
    return reduction_variants()


def _options(case):
    """(ignore_index, label_smoothing, reduction) of a case, with torch's defaults."""
    o = case.options
    return (o.get("ignore_index", ref.DEFAULT_IGNORE_INDEX), o.get("label_smoothing", 0.0),
            o["reduction"])


def _reference(name):
    def reference(case):
        a = case.args
        return ref.loss(name, a["input"], a["target"], a.get("weight"), *_options(case),
                        format_of(case.dtype))

    return reference


def _reference_grad(name):
    def reference_grad(case):
        a = case.args
        return ref.loss_grad(name, case.grad_output, a["input"], a["target"], a.get("weight"),
                             *_options(case), format_of(case.dtype))

    return reference_grad


# --- magnitudes ----------------------------------------------------------------------------------

@np.errstate(**_QUIET)
def _row_terms(name, case, signed=False):
    """(rows, |term| per row and class (M, C), nlp (M, C), softmax (M, C), smoothing); with
    ``signed`` the terms carry the weights' signs."""
    ignore, smoothing, _ = _options(case)
    rows = ref.rows_of(case.args["input"], case.args["target"], case.args.get("weight"), ignore)
    M, C = rows.x.shape
    w = (rows.weight if signed else np.abs(rows.weight))[None, :]
    if name == "nll_loss":
        x_t = np.abs(rows.x[np.arange(M), rows.t])
        terms = np.zeros((M, C))
        terms[np.arange(M), rows.t] = np.where(rows.valid, w[0, rows.t] * x_t, 0.0)
        return rows, terms, None, None, 0.0
    terms, nlp, softmax = np.empty((M, C)), np.empty((M, C)), np.empty((M, C))
    step = max(1, ROW_BLOCK // max(C, 1))
    for start in range(0, M, step):
        block = slice(start, start + step)
        terms[block], nlp[block], softmax[block] = _ce_block(rows, block, w, smoothing, signed)
    return rows, terms, nlp, softmax, smoothing


ROW_BLOCK = 1 << 16  # logits per block of rows: the block's temporaries stay in the caches


def _ce_block(rows, block, w, smoothing, signed):
    """``_row_terms`` of cross_entropy on the rows ``block``: (terms, nlp, softmax)."""
    x = np.where(np.isfinite(rows.x[block]), rows.x[block], -np.inf)
    M, C = x.shape
    finite_rows = np.isfinite(x).any(axis=1) if C else np.zeros(M, bool)
    m = np.where(finite_rows, np.max(x, axis=1, initial=-np.inf), 0.0)[:, None]
    lse = m + np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))
    nlp = np.where(np.isfinite(x), lse - x, 0.0)  # masked classes: judged exactly, not here
    softmax = np.where(np.isfinite(x), np.exp(-nlp), 0.0)
    # log of the sum of exponentials (>= 1) errs by u absolutely, whatever nlp's size.
    size = np.where(np.isfinite(x), nlp + 1, 0.0)
    if rows.soft:
        q = w * ref.smoothed_targets(rows.target[block], smoothing, C)
        terms = (q if signed else np.abs(q)) * size
    else:
        one_hot = np.zeros((M, C))
        one_hot[np.arange(M), rows.t[block]] = 1.0
        terms = (1 - smoothing) * one_hot * w * size + smoothing / max(C, 1) * w * size
        terms = np.where(rows.valid[block, None], terms, 0.0)
    return terms, nlp, softmax


def _mean_parts(rows, reduction):
    """(divisor, spread, by_weight_sum): what a mean divides by, and sum |w_t| / |W|."""
    if reduction != "mean":
        return 1.0, 1.0, False
    if rows.soft:
        return float(max(rows.x.shape[0], 1)), 1.0, False
    w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
    total = float(np.sum(w_t))
    if total == 0:
        return np.inf, 1.0, True
    return abs(total), float(np.sum(np.abs(w_t))) / abs(total), True


def _magnitude(name):
    @np.errstate(**_QUIET)
    def magnitude(case):
        rows, terms, _, _, _ = _row_terms(name, case)
        reduction = _options(case)[2]
        M, C = rows.x.shape
        depth = DEPTH[name]
        w_max = max(1.0, float(np.abs(rows.weight).max(initial=1.0)))
        per_row = terms.sum(axis=1)
        if reduction == "none":
            return Magnitude(per_row.reshape(rows.batch_shape), max(C, 1), depth,
                             amplification=max(C, 1) * w_max)
        n = max(M * C, 1)
        total = float(per_row.sum())
        underflow = n * w_max
        if reduction == "sum" or M == 0:
            return Magnitude(np.array(total), n, depth, amplification=underflow)
        divisor, spread, by_weight_sum = _mean_parts(rows, reduction)
        if not np.isfinite(divisor):
            return Magnitude(np.array(np.inf), n, depth)  # nan or inf: judged exactly
        if by_weight_sum:
            signed = float(_row_terms(name, case, signed=True)[1].sum())
            quotient = abs(signed) / divisor if np.isfinite(signed) else 0.0
            s = (total + quotient * spread * divisor) / divisor
            return Magnitude(np.array(s), n, depth, amplification=underflow / divisor)
        return Magnitude(np.array(total / divisor), n, depth, amplification=underflow / divisor)

    return magnitude


def _grad_magnitudes(name):
    @np.errstate(**_QUIET)
    def grad_magnitudes(case):
        rows, _, nlp, softmax, smoothing = _row_terms(name, case)
        reduction = _options(case)[2]
        M, C = rows.x.shape
        depth = DEPTH[name]
        g = np.asarray(case.grad_output, np.float64)
        g = np.abs(g.reshape(-1) if reduction == "none" else np.full(M, float(g)))
        divisor, spread, _ = _mean_parts(rows, reduction)
        if M and not np.isfinite(divisor):
            return {"input": Magnitude(np.full(rows.input_shape, np.inf), 1, depth)}
        a = np.where(rows.valid, g * spread / divisor, 0.0)[:, None]
        w = np.abs(rows.weight)[None, :]
        if name == "nll_loss":  # a w at each row's target, 0 elsewhere: no (M, C) products
            scale = np.zeros((M, C))
            scale[np.arange(M), rows.t] = a[:, 0] * w[0, rows.t]
        elif rows.soft:
            q = np.abs(w * ref.smoothed_targets(rows.target, smoothing, C))
            scale = a * (softmax * (1 + nlp) * q.sum(axis=1, keepdims=True) + q)
        else:
            one_hot = np.zeros((M, C))
            one_hot[np.arange(M), rows.t] = 1.0
            w_t = w[0, rows.t][:, None] if M else np.zeros((0, 1))
            k = (1 - smoothing) * w_t + smoothing / max(C, 1) * w.sum()
            scale = a * (softmax * (1 + nlp) * k + (1 - smoothing) * w_t * one_hot
                         + smoothing / max(C, 1) * w)
        terms = (C if name == "cross_entropy" else 1) + (M if reduction == "mean" else 0)
        amplification = np.maximum(1, a) * max(1.0, float(w.max(initial=1.0)))
        # torch's log_softmax backward sums the row's upstream gradients in a vectorised loop
        # (vec::reduce_all): a sequential sum, not a pairwise one.
        summation = "sequential" if name == "cross_entropy" else "cascade"
        out = {"input": Magnitude(ref.to_input_layout(scale, rows.input_shape), terms, depth,
                                  summation=summation, amplification=np.broadcast_to(
                                      ref.to_input_layout(np.broadcast_to(
                                          amplification, (M, C)), rows.input_shape),
                                      rows.input_shape))}
        if name == "cross_entropy" and rows.soft:
            out.update(_soft_grad_magnitudes(case, rows, a, nlp, smoothing, amplification))
        return out

    return grad_magnitudes


@np.errstate(**_QUIET)
def _soft_grad_magnitudes(case, rows, a, nlp, smoothing, amplification):
    """Probability targets: the target's gradient a (1 - e) w_c nlp_c, scale
    |a| (1 - e) |w_c| (nlp_c + 1), C terms (the log-sum-exp); the weight's sum over rows of
    a_i p'_ic nlp_ic, scale sum_i |a_i p'_ic| (nlp_ic + 1), M + C terms (``a``: |upstream| per
    row and the mean's division, (M, 1); masked classes are judged exactly)."""
    M, C = rows.x.shape
    size = np.where(np.isfinite(rows.x), nlp + 1, 0.0) if M else np.zeros((0, C))
    w = np.abs(rows.weight)[None, :]
    # a subnormal a (1 - e) w_c, then times nlp_c, magnifies its absolute error (the weight's
    # too): nlp + 1 in the amplification (numpy float64, logits 1e4 apart: 499 subnormal units)
    out = {"target": Magnitude(
        ref.to_input_layout(a * (1 - smoothing) * w * size, rows.input_shape), C,
        DEPTH["cross_entropy"], amplification=ref.to_input_layout(
            np.broadcast_to(amplification, (M, C)) * np.maximum(size, 1.0), rows.input_shape))}
    if case.args.get("weight") is not None:
        q = np.abs(ref.smoothed_targets(rows.target, smoothing, C))
        largest = max(1.0, float(size.max(initial=1.0)))
        out["weight"] = Magnitude(
            np.sum(a * q * size, axis=0), M + C, DEPTH["cross_entropy"],
            amplification=max(1.0, float(a.max(initial=0.0))) * largest)
    return out


# --- invalid calls -------------------------------------------------------------------------------

def _invalid(name):
    def invalid_calls():
        """Calls torch 2.13 rejects (each verified), that a conforming candidate must reject."""
        x = np.zeros((3, 4))
        t = np.array([0, 1, 2])
        calls = [
            ("target-too-large", "target 4 is not a class of 4 (nor ignore_index)",
             {"input": x, "target": np.array([0, 4, 1])}, {}),
            ("target-negative", "target -1 is neither a class nor ignore_index (-100)",
             {"input": x, "target": np.array([0, -1, 1])}, {}),
            ("target-batch-size", "target has 4 entries for a batch of 3",
             {"input": x, "target": np.array([0, 1, 2, 1])}, {}),
            ("k-dim-target-shape", "target (2, 4) for input (2, 4, 3): expected (2, 3)",
             {"input": np.zeros((2, 4, 3)), "target": np.zeros((2, 4), np.int64)}, {}),
            ("weight-size", "weight has 3 entries but there are 4 classes",
             {"input": x, "target": t, "weight": np.ones(3)}, {}),
            ("unknown-reduction", "reduction 'avg' is not one of none, sum, mean",
             {"input": x, "target": t}, {"reduction": "avg"}),
            ("integer-input", "input is int64, not floating",
             {"input": np.zeros((3, 4), np.int64), "target": t}, {}),
            ("float-target-of-batch-shape", "a float target must have the input's shape "
             "(probabilities), not the batch's", {"input": x, "target": np.zeros(3)}, {}),
        ]
        if name == "cross_entropy":
            calls += [
                ("label-smoothing-above-one", "label_smoothing 1.5 is outside [0, 1]",
                 {"input": x, "target": t}, {"label_smoothing": 1.5}),
                ("probability-target-shape", "probability target (3, 5) for input (3, 4)",
                 {"input": x, "target": np.full((3, 5), 0.2)}, {}),
                ("probability-target-ignore-index", "ignore_index is not supported with "
                 "probability targets", {"input": x, "target": np.full((3, 4), 0.25)},
                 {"ignore_index": 1}),
            ]
        else:
            calls.append(("probability-target", "nll_loss takes class indices, not "
                          "probabilities", {"input": x, "target": np.full((3, 4), 0.25)}, {}))
        out = []
        for call_id, reason, args, options in calls:
            args.setdefault("weight", None)
            out.append(InvalidCall(call_id, reason, Case("float32", args,
                                                          {"reduction": "mean", **options})))
        return out

    return invalid_calls


# --- properties: shift invariance, class permutation, the mean's divisor --------------------------

# |c| per dtype: beyond exp's overflow (709.8, 88.7, 11.1, 88.7) and below the point where the
# grid 2**g that makes x + c exact gets coarser than the logits' own spread.
OFFSETS = {"float64": (1e3, 1e5, 1e10), "float32": (100.0, 1e3, 1e4),
           "float16": (16.0, 100.0, 1e3), "bfloat16": (100.0, 256.0)}


def _shift(case, draw):
    """x -> x + c along the class axis, one c per row (the same for every row when the input
    is an expanded view). The finite logits are snapped to a grid 2**g coarse enough that every
    x + c is a number of the dtype, c is large (beyond exp's range in the dtype, where a
    log-softmax that does not subtract the row max overflows), -inf stays -inf. None where x on
    the grid or x + c would overflow the dtype."""
    x = np.asarray(case.args["input"], np.float64)
    rows = to_rows(x, x.shape)
    fmt = format_of(case.dtype)
    per_row = case.layouts.get("input") != "expanded" and draw(st.booleans(), label="per row")
    count = rows.shape[0] if per_row and rows.shape[0] else 1
    magnitudes = draw(st.lists(st.sampled_from(OFFSETS[case.dtype]), min_size=count,
                               max_size=count), label="offsets")
    signs = draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=count, max_size=count),
                 label="offset signs")
    c = np.array(magnitudes) * np.array(signs)
    finite = np.isfinite(rows)
    largest = float(np.abs(rows[finite]).max(initial=0.0))
    # Every multiple of 2**g of magnitude <= 2**(g + p) is a number of the dtype; one bit to
    # spare covers the rounding of x and c to the grid.
    g = math.ceil(math.log2(largest + float(np.abs(c).max()))) - fmt.precision + 1
    step = 2.0 ** g
    snapped = np.where(finite, np.round(np.where(finite, rows, 0.0) / step) * step, rows)
    c = np.round(c / step) * step
    c = np.where(c == 0, np.sign(np.array(signs)) * step, c)
    shifted = snapped + c[:, None]  # exact in float64: both on the grid, well inside 2**53

    def in_dtype(values):
        with np.errstate(invalid="ignore"):
            return ~finite | ((round_to(np.where(finite, values, 0.0), case.dtype) == values)
                              & (np.abs(values) <= fmt.max_finite))

    # the snapped logits too: float16's -65504 snapped to a grid of 64 is -65536, beyond it
    if not (in_dtype(snapped).all() and in_dtype(shifted).all()):
        return None  # x or x + c would overflow the dtype: not an exact shift
    a = replaced(case, {"input": from_rows(snapped, x.shape)})
    return Pair(a, replaced(a, {"input": from_rows(shifted, x.shape)}))


PERMUTATION = Property("permutation", class_permutation(
    lambda case: case.options.get("ignore_index", ref.DEFAULT_IGNORE_INDEX)), PERMUTATION_DOC)
BATCH_SPLIT = batch_split_property(("input", "target"))
PROPERTIES = {
    "cross_entropy": (Property("shift", _shift, "adding a constant to a row's logits leaves "
                                                "its loss"), PERMUTATION, BATCH_SPLIT),
    "nll_loss": (PERMUTATION, BATCH_SPLIT),
}


def _mean_divisor(case, none_shape):
    """Index targets: the sum of w_t over the rows not ignored; probability targets: rows."""
    rows = ref.rows_of(case.args["input"], case.args["target"], case.args.get("weight"),
                       _options(case)[0])
    if rows.soft:
        return rows.x.shape[0]
    return exact_sum(np.where(rows.valid, rows.weight[rows.t], 0.0))


# --- speed ladder --------------------------------------------------------------------------------

# (rows, classes): speed.py's ladder, from a few cache lines to a 128 MiB float32 logits tensor.
SPEED_SIZES = MATRIX_SIZES


def _speed_case(name):
    def case(size, dtype, rng):
        """Typical training inputs: logits of spread 2 (log-probabilities for nll_loss), index
        targets with a tenth of the rows ignored, no weight, 'mean'."""
        rows, classes = size
        x = normal_values(size, dtype, rng, scale=2.0)
        if name == "nll_loss":
            with np.errstate(under="ignore"):
                x = in_dtype(log_softmax(x), dtype)
        target = rng.integers(0, classes, rows)
        target[rng.random(rows) < IGNORED_SHARE] = ref.DEFAULT_IGNORE_INDEX
        return typical_case(dtype, {"input": x, "target": target, "weight": None},
                            {"reduction": "mean"})
    return case


def _exp_kernel(x):
    """cross_entropy's elementwise work alone: one exp per logit (the softmax)."""
    import torch

    return torch.exp(x)


def _gather_kernel(x):
    """nll_loss's work alone: one weighted negation per row (its gather reads one logit)."""
    import torch

    return torch.neg(x)


def _speed(name):
    if name == "cross_entropy":
        elements, work, kernel = (lambda case: int(case.args["input"].size),
                                  "one exp per logit (the softmax)", _exp_kernel)
    else:
        elements, work, kernel = (lambda case: int(case.args["input"].shape[0]),
                                  "one negation per row (the gathered log-probability)",
                                  _gather_kernel)
    variants = [("weighted", variant(rows_output, arrays={"weight": class_weights})),
                ("none", variant(rows_output, reduction="none"))]
    if name == "cross_entropy":
        variants.insert(1, ("smoothing", variant(rows_output, label_smoothing=0.1)))
    return SpeedLadder(sizes=SPEED_SIZES, case=_speed_case(name),
                       bytes_moved=lambda case, backward: bytes_moved(
                           case, backward, ("input", "target", "weight"),
                           math.prod(rows_output(case))),
                       elements=elements, work=work, kernel=kernel, variants=tuple(variants),
                       inputs=("logits N(0,2)" if name == "cross_entropy" else
                               "log-probabilities of logits N(0,2)")
                       + ", a tenth of the targets ignored (-100), no weight, 'mean'")


def has_probability_targets(case) -> bool:
    """Whether the case's target holds probabilities (floats), not class indices."""
    return np.asarray(case.args["target"]).dtype.kind == "f"


# An int64 index target has no gradient (Spec.differentiable_args leaves it out); the class
# weight is differentiable only with probability targets (torch refuses it with indices).
DIFFERENTIABLE = {"cross_entropy": ("input", "target", "weight"), "nll_loss": ("input",)}
DIFFERENTIABLE_WHEN = {"cross_entropy": {"weight": has_probability_targets}, "nll_loss": {}}


def _spec(name):
    return Spec(
        name=name, family="classification", positional=("input", "target"),
        keyword_arrays=("weight",), variants=_variants(), cases=case_strategy(name),
        edge_cases=edge_strategy(name), invalid_calls=_invalid(name),
        reference=_reference(name), magnitude=_magnitude(name),
        differentiable=DIFFERENTIABLE[name], differentiable_when=DIFFERENTIABLE_WHEN[name],
        reference_grad=_reference_grad(name), grad_magnitudes=_grad_magnitudes(name),
        speed=_speed(name), properties=PROPERTIES[name], mean_divisor=_mean_divisor,
        llm=llm_cases(name),
    )


SPECS = tuple(_spec(name) for name in ref.LOSSES)
