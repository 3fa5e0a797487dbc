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
- The K-dimensional form: linear_weight (C, d1, ..., dK, D) and linear_bias (C, d1, ..., dK)
  (exactly that shape) with batched tokens (N, D) give the logits z[n, c, k] = x_n . W[c, k]
  + b[c, k] of shape (N, C, d1, ..., dK), and the loss is cross_entropy of them: targets
  (N, d1, ..., dK) of class indices or probabilities (N, C, d1, ..., dK), 'none' of shape
  (N, d1, ..., dK), 'mean' over the N d1 ... dK rows (probability targets) or their weights
  (index targets). Unbatched tokens (D,) with a K-dimensional weight must raise (torch:
  "K-dimensional loss ... requires batched input"), as must a bias or a target whose shape
  does not match the weight's (C, d1, ..., dK).
- Covered: the 2-D weight (C, D) and the K-dimensional one, index and probability targets,
  weight, ignore_index, label_smoothing, every reduction, gradients of input, linear_weight and
  linear_bias, and with probability targets of the target and the class weight
  (cross_entropy's: a_i (1 - e) w_c nlp_ic and sum_i a_i p'_ic nlp_ic; torch 2.13
  differentiates both on its reference path and, falling back to it, with ``options``; with
  index targets the chunked path accepts a weight that requires grad and leaves it without a
  gradient, the reference path refuses it).
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
the loss moves by at most sum_c (|q_c| + K s_c) dz_c. A row is a token n and, with the
K-dimensional weight, one of its P = d1 ... dK positions k (the 2-D weight has P = 1): the
formulas are the same per row (n, k) with W[:, k] and b[:, k] for W and b, over M = N P rows.
So per row:

- value: S = sum_c |q_c| (nlp_c + 1) (cross_entropy's) + sum_c (|q_c| + K s_c)(|z_c| + A_c),
  depth 11 (cross_entropy's 10 and the logits' rounding), terms C + D; the same mean rules as
  cross_entropy.
- gradient in z: H_c = |a| (s_c (1 + nlp_c) K + |q_c| + K s_c (dz_c + sum_j s_j dz_j) / u),
  the upstream a as cross_entropy's (the mean's divisor included); then the input's gradient
  G W, a sum over the P C logits of its token, has the scale H |W| (terms P C + D), the
  weight's G^T x the scale H^T |x| and the bias's the column sums of H (terms N + C + D: the
  sum over the batch of the tokens' contributions). The sums are sequential, as
  cross_entropy's gradient (torch's log_softmax backward sums a row's upstream gradients in a
  sequential loop: its error grows with C, not log C).
- probability targets: with n_c = nlp_c + 1 + (dz_c + sum_j s_j dz_j) / u (nlp_c's own error
  and the logits' carried through the log-softmax), the target's gradient has the scale
  |a| (1 - e) |w_c| n_c (terms C + D) and the weight's sum_i |a_i p'_ic| n_ic (terms M + C + D:
  the sum over every row), pairwise sums (no log_softmax backward in them).
- beyond first order: the logits' errors can be large (a bfloat16 logit of 30,000 rounds by
  up to 64), where the first-order terms above fall short; each adds its rigorous remainder
  (``beyond_first_order``): K D^2 / 2 to the value and to nlp_c, D = max_c dz_c, and
  min(1, s_c (D^2 / 2 + e^r - 1 - r)) to the softmax's shift, r = dz_c + D. They are of
  order u^2 for logits of moderate size.
- underflow: one subnormal unit per term, times max(1, |a w|) max(1, |x|, |W|).
"""

from __future__ import annotations

import numpy as np

from loss_reference import linear as ref
from loss_reference.engine import even_slices, parallel_map, row_chunks, thread_count
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
# the magnitudes are computed a pass of tokens at a time, on the reference's threads: at most
# this many logits a pass (at least one token), whose dozen temporaries are reused from pass
# to pass: a language model's 256 tokens by 128,256 classes in one pass made arrays of 260 MB
# afresh, 9 s where the reference took 4
LOGITS_PER_PASS = 1 << 21


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


class _Layer:
    """What every pass of tokens shares: the call, the magnitudes |W| and |b| of its layer
    (rows per position, as the reference lays them out), made once."""

    def __init__(self, call):
        self.call = call
        self.W_magnitude, self.b_magnitude = np.abs(call.W_rows), np.abs(call.b_rows)


@np.errstate(**_QUIET)
def _row_parts(layer: _Layer, tokens: slice, smoothing):
    """For the rows (n, k) of ``tokens``: |q| (coefficients), nlp, softmax s, the logits' error
    scale |z| + A, and the signed loss per row, all (rows, C) but the last (rows,)."""
    call = layer.call
    x, r, C = call.x[tokens], call.rows, call.classes
    rows = _rows_of(call, tokens)
    z = (x @ call.W_rows.T + call.b_rows).reshape(-1, C)
    terms = np.abs(x) @ layer.W_magnitude.T + layer.b_magnitude
    scale = np.abs(z) + terms.reshape(-1, C)
    m = np.max(z, axis=1, keepdims=True, initial=-np.inf) if z.shape[1] else z[:, :1]
    lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
    nlp = lse - z
    s = np.exp(-nlp)
    weight = r.weight[None, :]
    if r.soft:
        q = weight * ref.ce.smoothed_targets(r.target[rows], smoothing, C)
    else:
        t, valid = r.t[rows], r.valid[rows]
        q = smoothing / max(C, 1) * np.broadcast_to(weight, z.shape).copy()
        q[np.arange(len(t)), t] += (1 - smoothing) * r.weight[t]
        q = np.where(valid[:, None], q, 0.0)
    return np.abs(q), nlp, s, scale, np.sum(q * nlp, axis=1)


def _passes(call, work):
    """The sum of ``work(tokens)`` over passes of tokens (slices of about LOGITS_PER_PASS
    logits each; None where ``work`` returns None: it writes its rows itself), each thread
    summing a share of consecutive passes in order, then the shares in order: the same sum
    from run to run, and one pass's temporaries alive a thread."""
    passes = row_chunks(call.x.shape[0], call.positions * call.classes, LOGITS_PER_PASS)

    def share_sum(share: slice):
        total = None
        for tokens in passes[share]:
            part = work(tokens)
            if part is not None:
                total = part if total is None else np.add(total, part, out=total)
        return total

    shares = even_slices(len(passes), min(len(passes), thread_count()))
    totals = [t for t in parallel_map(share_sum, shares) if t is not None]
    return sum(totals[1:], totals[0]) if totals else None


def _rows_of(call, tokens: slice) -> slice:
    """The rows (n, k) of a slice of tokens: P per token, token-major."""
    P = call.positions
    return slice(tokens.start * P, tokens.stop * P)


def _mean_parts(call, reduction):
    """(divisor, spread): what a mean divides by, and sum |w_t| / |W| (1 unless by weights)."""
    r = call.rows
    if reduction != "mean":
        return 1.0, 1.0
    if r.soft:
        return float(max(call.row_count, 1)), 1.0
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
def beyond_first_order(s, nlp, dz):
    """(softmax, lse): what the logits' errors dz move the softmax s_c and the row's
    log-sum-exp by beyond the first-order terms s_c (dz_c + sum_j s_j dz_j) and
    sum_j s_j dz_j, bounded rigorously for errors of any size.

    With |d_j| <= dz_j, D = max_j dz_j and r_c = dz_c + D: s'_c = s_c e^y, |y| <= r_c, and y
    differs from its first-order part by ln sum_j s_j e^(d_j) - sum_j s_j d_j, in [0, D^2 / 2]
    (Hoeffding's lemma: the d_j span at most 2 D). So |s'_c - s_c| exceeds its first-order
    bound by at most s_c (D^2 / 2 + e^r_c - 1 - r_c), and by at most 1 (s and s' in [0, 1]);
    the log-sum-exp by at most D^2 / 2. Negligible (order u^2) for logits of moderate size; a
    bfloat16 logit of 30,000 rounds by up to 64, where the softmax can move by all of 1."""
    D = np.max(dz, axis=1, keepdims=True, initial=0.0)
    r = dz + D
    excess = D ** 2 / 2 + np.maximum(np.expm1(np.minimum(r, 700.0)) - r, r ** 2 / 2)
    softmax = np.where(r > 700, 1.0, np.minimum(1.0, np.exp(np.log(excess) - nlp)))
    return softmax, lse_beyond_first_order(dz)


def lse_beyond_first_order(dz):
    """``beyond_first_order``'s bound for the log-sum-exp alone: D^2 / 2 per row."""
    return np.max(dz, axis=1, keepdims=True, initial=0.0) ** 2 / 2


@np.errstate(**_QUIET)
def magnitude(case):
    """The tolerance's scale per output element (the module's docstring derives it)."""
    call = _call(case)
    _, smoothing, reduction = _options(case)
    M, D = call.row_count, call.x.shape[1]
    C = call.classes
    per_row, signed = np.zeros(M), np.zeros(M)
    u = format_of(case.dtype).unit_roundoff
    layer = _Layer(call)

    def one_pass(tokens):  # each pass writes its own rows
        q, nlp, s, scale, loss = _row_parts(layer, tokens, smoothing)
        K = q.sum(axis=1, keepdims=True)
        rows = _rows_of(call, tokens)
        lse_excess = lse_beyond_first_order(u * scale)
        per_row[rows] = (np.sum(q * (nlp + 1) + (q + K * s) * scale, axis=1)
                         + K[:, 0] * lse_excess[:, 0] / u)
        signed[rows] = loss

    _passes(call, one_pass)
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
    N, D = call.x.shape
    M, C, P = call.row_count, call.classes, call.positions
    shapes = {"input": call.input_shape, "linear_weight": call.W.shape,
              "linear_bias": call.W.shape[:-1]}
    names = ["input", "linear_weight"] + (["linear_bias"] if case.args.get("linear_bias")
                                          is not None else [])
    divisor, spread = _mean_parts(call, reduction)
    if M and not np.isfinite(divisor):
        return {n: Magnitude(np.full(shapes[n], np.inf), 1, DEPTH) for n in names}
    g = np.abs(np.asarray(case.grad_output, np.float64)).reshape(-1)
    g = np.broadcast_to(g if reduction == "none" else g[:1], (M,))
    a = np.where(call.rows.valid, g * spread / divisor, 0.0)
    u = format_of(case.dtype).unit_roundoff
    # position-major, as the reference lays the layer out: W_rows (P C, D), b_rows (P C,)
    d_input = np.zeros((N, D))
    layer = _Layer(call)

    def one_pass(tokens):  # the input's rows of its tokens; the layer's sums over them
        q, nlp, s, scale, _ = _row_parts(layer, tokens, smoothing)
        K = q.sum(axis=1, keepdims=True)
        dz = u * scale
        softmax_excess, _ = beyond_first_order(s, nlp, dz)
        shift = s * (dz + np.sum(s * dz, axis=1, keepdims=True)) + softmax_excess
        H = a[_rows_of(call, tokens), None] * (s * (1 + nlp) * K + q + K * shift / u)
        H = H.reshape(-1, P * C)  # per token
        d_input[tokens] = H @ layer.W_magnitude
        return H.T @ np.concatenate([np.abs(call.x[tokens]), np.ones((H.shape[0], 1))],
                                    axis=1)

    d_layer = _passes(call, one_pass)
    amplification = M * C * _underflow(call, float(a.max(initial=0.0)))
    # cross_entropy's gradient sums each row's upstream gradients sequentially in torch
    # (conformance/specs/classification.py): so does the gradient in the logits here.
    common = {"depth": DEPTH, "amplification": amplification, "summation": "sequential"}
    out = {"input": Magnitude(d_input.reshape(call.input_shape), P * C + D, **common),
           "linear_weight": Magnitude(call.weight_layout(d_layer[:, :D]), N + C + D,
                                      **common)}
    if "linear_bias" in names:
        out["linear_bias"] = Magnitude(call.weight_layout(d_layer[:, D]), N + C + D, **common)
    if call.rows.soft:
        out.update(_soft_grad_magnitudes(case, layer, a, smoothing, u, amplification))
    return out


@np.errstate(**_QUIET)
def _soft_grad_magnitudes(case, layer, a, smoothing, u, amplification):
    """Probability targets: the target's gradient a (1 - e) w_c nlp_c and the weight's
    sum_i a_i p'_ic nlp_ic, nlp_c carrying the logits' error dz_c + sum_j s_j dz_j (the
    module's docstring); ``a`` is |upstream| per row with the mean's division."""
    call = layer.call
    M, C = call.row_count, call.classes
    w = np.abs(call.rows.weight)[None, :]
    d_target = np.zeros((M, C))

    def one_pass(tokens):  # the target's rows of its tokens; the weight's sum over them
        _, nlp, s, scale, _ = _row_parts(layer, tokens, smoothing)
        rows = _rows_of(call, tokens)
        dz = u * scale
        lse_excess = lse_beyond_first_order(dz)
        size = nlp + 1 + (dz + np.sum(s * dz, axis=1, keepdims=True) + lse_excess) / u
        d_target[rows] = a[rows, None] * (1 - smoothing) * w * size
        p = np.abs(ref.ce.smoothed_targets(call.rows.target[rows], smoothing, C))
        return np.sum(a[rows, None] * p * size, axis=0)

    d_weight = _passes(call, one_pass)
    common = {"depth": DEPTH, "amplification": amplification}
    D = call.x.shape[1]
    target_scale = ref.ce.to_input_layout(d_target, call.rows.input_shape)
    out = {"target": Magnitude(target_scale, C + D, **common)}
    if case.args.get("weight") is not None:
        out["weight"] = Magnitude(d_weight, M + C + D, **common)
    return out


# --- invalid calls -------------------------------------------------------------------------------

def invalid_calls():
    """Calls torch 2.13 rejects (each verified), that a conforming candidate must reject."""
    x, W, t = np.zeros((3, 4)), np.zeros((5, 4)), np.array([0, 1, 2])
    p = np.full((3, 5), 0.2)
    W2, t2 = np.zeros((5, 2, 4)), np.zeros((3, 2), np.int64)  # the K-dimensional form
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
        ("k-dim-unbatched-input", "a K-dimensional linear_weight (5, 2, 4) with unbatched "
         "tokens (4,)", {"input": np.zeros(4), "linear_weight": W2, "target": np.array([0, 1])},
         {}),
        ("k-dim-bias-shape", "linear_bias (5,) for a linear_weight (5, 2, 4): it must be (5, 2)",
         {"input": x, "linear_weight": W2, "target": t2, "linear_bias": np.zeros(5)}, {}),
        ("k-dim-bias-order", "linear_bias (5, 3, 2) for a linear_weight (5, 2, 3, 4): it must be "
         "(5, 2, 3)", {"input": x, "linear_weight": np.zeros((5, 2, 3, 4)),
                       "target": np.zeros((3, 2, 3), np.int64),
                       "linear_bias": np.zeros((5, 3, 2))}, {}),
        ("k-dim-target-shape", "index target (3, 3) for a linear_weight (5, 2, 4): it must be "
         "(3, 2)", {"input": x, "linear_weight": W2, "target": np.zeros((3, 3), np.int64)}, {}),
        ("k-dim-probability-target-shape", "probability target (3, 5, 3) for a linear_weight "
         "(5, 2, 4): it must be (3, 5, 2)",
         {"input": x, "linear_weight": W2, "target": np.full((3, 5, 3), 0.2)}, {}),
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
