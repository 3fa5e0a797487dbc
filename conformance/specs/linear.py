"""The linear family: linear_cross_entropy, cross-entropy over the logits of a linear layer.

Contract (torch 2.13's documentation and its reference path, behaviour verified):

- ``linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
  reduction='mean', ignore_index=None, label_smoothing=0.0, options=None)`` is
  ``cross_entropy(linear(input, linear_weight, linear_bias), target, ...)``: input (D,) or
  (N, D) tokens, linear_weight (C, D), linear_bias (C,), logits z = x W^T + b (C,) or (N, C).
  Everything cross_entropy's contract says of its targets, class weight, smoothing and
  reductions holds on z (conformance/specs/classification.py), with one difference:
  ignore_index None (the default) means -100 for index targets, and with probability targets
  only None may be passed (an explicit value, even -100, must raise: torch rejects it).
- Covered: the 2-D weight (C, D), index and probability targets, weight, ignore_index,
  label_smoothing, every reduction, gradients of input, linear_weight and linear_bias, and
  with probability targets of the target and the class weight (cross_entropy's: a_i (1 - e)
  w_c nlp_ic and sum_i a_i p'_ic nlp_ic; torch 2.13 differentiates both on its reference path
  and, falling back to it, with ``options``; with index targets the chunked path accepts a
  weight that requires grad and leaves it without a gradient, the reference path refuses it).
  Not yet: the K-dimensional weight (C, d1, ..., dK, D).
- Inputs are finite, and every logit's terms, sum_d |x_d W_cd| + |b_c|, at most a sixteenth
  of the dtype's largest number: a layer whose logits overflow the dtype (torch's reference
  path rounds them to it) has no finite logits to compare. Drawn so (the tokens scaled by a
  power of two, ``linear_cases.within_range``); non-finite tokens have no certified logits:
  the reference raises EvaluationError and the case is skipped.
- ``options`` (torch's chunked path) is an implementation choice, not part of the function:
  the suite calls every candidate without it; the ``torch-chunked`` alias passes torch's
  defaults (``LinearCrossEntropyOptions()``).

Tolerance (conformance/accuracy.py; the derivation extends cross_entropy's). An implementation
computes the logits with an error dz_c <= u (|z_c| + A_c) per logit, A_c = sum_d |x_d W_cd| +
|b_c| (a dot product of D terms accumulated in any order, then rounded to the dtype: the
summation units of the D terms and one rounding, both inside the policy's depth and terms), and
then cross_entropy of z. With q_c the coefficient of nlp_c in the row's loss (index targets:
(1 - e) w_t [c = t] + (e / C) w_c; probabilities: w_c p'_c), K = sum_c |q_c| and s the softmax,
the loss moves by at most sum_c (|q_c| + K s_c) dz_c. So per row:

- value: S = sum_c |q_c| (nlp_c + 1) (cross_entropy's) + sum_c (|q_c| + K s_c)(|z_c| + A_c),
  depth 11 (cross_entropy's 10 and the logits' rounding), terms C + D; the same mean rules as
  cross_entropy.
- gradient in z: H_c = |a| (s_c (1 + nlp_c) K + |q_c| + K s_c (dz_c + sum_j s_j dz_j) / u),
  the upstream a as cross_entropy's (the mean's divisor included); then the input's gradient
  G W has the scale H |W| (terms C + D), the weight's G^T x the scale H^T |x| and the bias's
  the column sums of H (terms N + C + D: the sum over the batch of the tokens' contributions).
  The sums are sequential, as cross_entropy's gradient (torch's log_softmax backward sums a
  row's upstream gradients in a sequential loop: its error grows with C, not log C).
- probability targets: with n_c = nlp_c + 1 + (dz_c + sum_j s_j dz_j) / u (nlp_c's own error
  and the logits' carried through the log-softmax), the target's gradient has the scale
  |a| (1 - e) |w_c| n_c (terms C + D) and the weight's sum_i |a_i p'_ic| n_ic (terms M + C + D:
  the sum over the batch), pairwise sums (no log_softmax backward in them).
- underflow: one subnormal unit per term, times max(1, |a w|) max(1, |x|, |W|).
"""

from __future__ import annotations

import numpy as np

from loss_reference import linear as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..cases import Case
from ..properties import batch_split_property, exact_sum
from . import InvalidCall, Spec, reduction_variants
from .linear_cases import case_strategy, edge_cases
from .llm import llm_cases
from .speed import linear_cross_entropy_ladder

NAME = "linear_cross_entropy"
DEPTH = 11
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}
ROWS_PER_PASS = 256  # the magnitudes are computed over this many tokens at a time


def _options(case):
    """(ignore_index, label_smoothing, reduction), torch's defaults filled in."""
    o = case.options
    return o.get("ignore_index"), o.get("label_smoothing", 0.0), o["reduction"]


def _arrays(case):
    a = case.args
    return a["input"], a["linear_weight"], a["target"], a.get("linear_bias"), a.get("weight")


def reference(case):
    """The certified loss (loss_reference/linear.py)."""
    return ref.loss(*_arrays(case), *_options(case), format_of(case.dtype))


def reference_grad(case):
    """The certified gradients of input, linear_weight and linear_bias (when given), and with
    probability targets of the target and the class weight (when given)."""
    x, W, target, bias, weight = _arrays(case)
    return ref.loss_grad(case.grad_output, x, W, target, bias, weight, *_options(case),
                         format_of(case.dtype))


# --- magnitudes ----------------------------------------------------------------------------------

def _call(case):
    ignore = _options(case)[0]
    return ref.Call(*_arrays(case)[:4], case.args.get("weight"), ignore)


@np.errstate(**_QUIET)
def _row_parts(call, rows: slice, smoothing):
    """For tokens ``rows``: |q| (coefficients), nlp, softmax s, the logits' error scale
    |z| + A, and the signed loss per row, all (n, C) but the last (n,)."""
    x, r = call.x[rows], call.rows
    z = x @ call.W.T + call.b
    scale = np.abs(z) + (np.abs(x) @ np.abs(call.W).T + np.abs(call.b))
    m = np.max(z, axis=1, keepdims=True, initial=-np.inf) if z.shape[1] else z[:, :1]
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    nlp = lse - z
    s = np.exp(-nlp)
    C = call.classes
    weight = r.weight[None, :]
    if r.soft:
        q = weight * ref.ce.smoothed_targets(r.target[rows], smoothing, C)
    else:
        t, valid = r.t[rows], r.valid[rows]
        q = smoothing / max(C, 1) * np.broadcast_to(weight, z.shape).copy()
        q[np.arange(len(t)), t] += (1 - smoothing) * r.weight[t]
        q = np.where(valid[:, None], q, 0.0)
    return np.abs(q), nlp, s, scale, np.sum(q * nlp, axis=1)


def _chunks(call):
    M = call.x.shape[0]
    return [slice(i, min(i + ROWS_PER_PASS, M)) for i in range(0, M, ROWS_PER_PASS)]


def _mean_parts(call, reduction):
    """(divisor, spread): what a mean divides by, and sum |w_t| / |W| (1 unless by weights)."""
    r = call.rows
    if reduction != "mean":
        return 1.0, 1.0
    if r.soft:
        return float(max(call.x.shape[0], 1)), 1.0
    w_t = np.where(r.valid, r.weight[r.t], 0.0)
    total = float(np.sum(w_t))
    if total == 0:
        return np.inf, 1.0
    return abs(total), float(np.sum(np.abs(w_t))) / abs(total)


def _underflow(call, a_max=1.0):
    w = float(np.abs(call.rows.weight).max(initial=1.0))
    largest = max(1.0, float(np.abs(call.x).max(initial=1.0)),
                  float(np.abs(call.W).max(initial=1.0)))
    return max(1.0, a_max * w) * largest


@np.errstate(**_QUIET)
def magnitude(case):
    """The tolerance's scale per output element (the module's docstring derives it)."""
    call = _call(case)
    _, smoothing, reduction = _options(case)
    M, D = call.x.shape
    C = call.classes
    per_row, signed = np.zeros(M), np.zeros(M)
    for rows in _chunks(call):
        q, nlp, s, scale, loss = _row_parts(call, rows, smoothing)
        K = q.sum(axis=1, keepdims=True)
        per_row[rows] = np.sum(q * (nlp + 1) + (q + K * s) * scale, axis=1)
        signed[rows] = loss
    terms = C + D
    if reduction == "none":
        return Magnitude(per_row.reshape(call.rows.batch_shape), terms, DEPTH,
                         amplification=terms * _underflow(call))
    n = max(M * terms, 1)
    total = float(per_row.sum())
    if reduction == "sum" or M == 0:
        return Magnitude(np.array(total), n, DEPTH, amplification=n * _underflow(call))
    divisor, spread = _mean_parts(call, reduction)
    if not np.isfinite(divisor):
        return Magnitude(np.array(np.inf), n, DEPTH)  # nan or inf: judged exactly
    quotient = abs(float(signed.sum())) / divisor
    s = (total + quotient * spread * divisor) / divisor
    return Magnitude(np.array(s), n, DEPTH, amplification=n * _underflow(call) / divisor)


@np.errstate(**_QUIET)
def grad_magnitudes(case):
    """The tolerance's scale per gradient element (the module's docstring derives it)."""
    call = _call(case)
    _, smoothing, reduction = _options(case)
    M, D = call.x.shape
    C = call.classes
    shapes = {"input": call.input_shape, "linear_weight": call.W.shape, "linear_bias": (C,)}
    names = ["input", "linear_weight"] + (["linear_bias"] if case.args.get("linear_bias")
                                          is not None else [])
    divisor, spread = _mean_parts(call, reduction)
    if M and not np.isfinite(divisor):
        return {n: Magnitude(np.full(shapes[n], np.inf), 1, DEPTH) for n in names}
    g = np.abs(np.asarray(case.grad_output, np.float64)).reshape(-1)
    g = np.broadcast_to(g if reduction == "none" else g[:1], (M,))
    a = np.where(call.rows.valid, g * spread / divisor, 0.0)
    u = format_of(case.dtype).unit_roundoff
    d_input, d_weight = np.zeros((M, D)), np.zeros((C, D + 1))
    for rows in _chunks(call):
        q, nlp, s, scale, _ = _row_parts(call, rows, smoothing)
        K = q.sum(axis=1, keepdims=True)
        dz = u * scale
        H = a[rows, None] * (s * (1 + nlp) * K + q
                             + K * s * (dz + np.sum(s * dz, axis=1, keepdims=True)) / u)
        d_input[rows] = H @ np.abs(call.W)
        d_weight += H.T @ np.concatenate([np.abs(call.x[rows]), np.ones((H.shape[0], 1))],
                                         axis=1)
    amplification = M * C * _underflow(call, float(a.max(initial=0.0)))
    # cross_entropy's gradient sums each row's upstream gradients sequentially in torch
    # (conformance/specs/classification.py): so does the gradient in the logits here.
    common = {"depth": DEPTH, "amplification": amplification, "summation": "sequential"}
    out = {"input": Magnitude(d_input.reshape(call.input_shape), C + D, **common),
           "linear_weight": Magnitude(d_weight[:, :D], M + C + D, **common)}
    if "linear_bias" in names:
        out["linear_bias"] = Magnitude(d_weight[:, D], M + C + D, **common)
    if call.rows.soft:
        out.update(_soft_grad_magnitudes(case, call, a, smoothing, u, amplification))
    return out


@np.errstate(**_QUIET)
def _soft_grad_magnitudes(case, call, a, smoothing, u, amplification):
    """Probability targets: the target's gradient a (1 - e) w_c nlp_c and the weight's
    sum_i a_i p'_ic nlp_ic, nlp_c carrying the logits' error dz_c + sum_j s_j dz_j (the
    module's docstring); ``a`` is |upstream| per token with the mean's division."""
    M, C = call.x.shape[0], call.classes
    w = np.abs(call.rows.weight)[None, :]
    d_target, d_weight = np.zeros((M, C)), np.zeros(C)
    for rows in _chunks(call):
        _, nlp, s, scale, _ = _row_parts(call, rows, smoothing)
        dz = u * scale
        size = nlp + 1 + (dz + np.sum(s * dz, axis=1, keepdims=True)) / u
        d_target[rows] = a[rows, None] * (1 - smoothing) * w * size
        p = np.abs(ref.ce.smoothed_targets(call.rows.target[rows], smoothing, C))
        d_weight += np.sum(a[rows, None] * p * size, axis=0)
    common = {"depth": DEPTH, "amplification": amplification}
    D = call.x.shape[1]
    out = {"target": Magnitude(d_target.reshape(np.shape(case.args["target"])), C + D, **common)}
    if case.args.get("weight") is not None:
        out["weight"] = Magnitude(d_weight, M + C + D, **common)
    return out


# --- invalid calls -------------------------------------------------------------------------------

def invalid_calls():
    """Calls torch 2.13 rejects (each verified), that a conforming candidate must reject."""
    x, W, t = np.zeros((3, 4)), np.zeros((5, 4)), np.array([0, 1, 2])
    p = np.full((3, 5), 0.2)
    calls = [
        ("target-too-large", "target 5 is not a class of 5 (nor ignore_index)",
         {"input": x, "linear_weight": W, "target": np.array([0, 5, 1])}, {}),
        ("target-batch-size", "target has 4 entries for a batch of 3",
         {"input": x, "linear_weight": W, "target": np.array([0, 1, 2, 1])}, {}),
        ("hidden-size", "linear_weight (5, 3) for tokens of 4 features",
         {"input": x, "linear_weight": np.zeros((5, 3)), "target": t}, {}),
        ("bias-size", "linear_bias has 4 entries for 5 classes",
         {"input": x, "linear_weight": W, "target": t, "linear_bias": np.zeros(4)}, {}),
        ("weight-size", "weight has 3 entries but there are 5 classes",
         {"input": x, "linear_weight": W, "target": t, "weight": np.ones(3)}, {}),
        ("three-dimensional-input", "input (2, 3, 4): tokens must be (D,) or (N, D)",
         {"input": np.zeros((2, 3, 4)), "linear_weight": W,
          "target": np.zeros((2, 3), np.int64)}, {}),
        ("integer-input", "input is int64, not floating",
         {"input": np.zeros((3, 4), np.int64), "linear_weight": W, "target": t}, {}),
        ("label-smoothing-above-one", "label_smoothing 1.5 is outside [0, 1]",
         {"input": x, "linear_weight": W, "target": t}, {"label_smoothing": 1.5}),
        ("probability-target-shape", "probability target (3, 4) for logits (3, 5)",
         {"input": x, "linear_weight": W, "target": np.full((3, 4), 0.25)}, {}),
        ("probability-target-ignore-index", "an explicit ignore_index (even -100) with "
         "probability targets", {"input": x, "linear_weight": W, "target": p},
         {"ignore_index": -100}),
        ("unknown-reduction", "reduction 'avg' is not one of none, sum, mean",
         {"input": x, "linear_weight": W, "target": t}, {"reduction": "avg"}),
    ]
    out = []
    for call_id, reason, args, options in calls:
        args = {"linear_bias": None, "weight": None, **args}
        out.append(InvalidCall(call_id, reason, Case("float32", args,
                                                      {"reduction": "mean", **options})))
    return out


# --- properties ----------------------------------------------------------------------------------

def mean_divisor(case, none_shape):
    """Index targets: the sum of w_t over the tokens not ignored; probability targets: N."""
    rows = _call(case).rows
    if rows.soft:
        return rows.x.shape[0]
    return exact_sum(np.where(rows.valid, rows.weight[rows.t], 0.0))


def has_probability_targets(case) -> bool:
    """Whether the case's target holds probabilities (floats): only then is the loss
    differentiable in the class weight (an int64 index target has no gradient either)."""
    return np.asarray(case.args["target"]).dtype.kind == "f"


BATCH_SPLIT = batch_split_property(("input", "target"))

SPECS = (Spec(
    name=NAME, family="linear", positional=("input", "linear_weight", "target"),
    keyword_arrays=("linear_bias", "weight"), variants=reduction_variants(),
    cases=case_strategy, edge_cases=edge_cases, invalid_calls=invalid_calls,
    reference=reference, magnitude=magnitude,
    differentiable=("input", "linear_weight", "linear_bias", "target", "weight"),
    differentiable_when={"weight": has_probability_targets}, reference_grad=reference_grad,
    grad_magnitudes=grad_magnitudes, properties=(BATCH_SPLIT,), mean_divisor=mean_divisor,
    llm=llm_cases(NAME), speed=linear_cross_entropy_ladder(),
),)
