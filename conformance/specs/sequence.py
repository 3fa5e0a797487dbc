"""The sequence family: ctc_loss.

Contract (torch 2.13's documentation, with these decisions; torch's behaviour verified):

- ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction='mean',
  zero_infinity=False). log_probs (T, N, C), or (T, C) unbatched; targets padded (N, S) (row n
  is read up to target_lengths[n]; the padding values after it are arbitrary and ignored, even
  outside [0, C)) or the 1-D concatenation of all targets (length sum(target_lengths)); an
  unbatched call takes a 1-D target of exactly its target length (torch rejects a padded
  1-D one) or one padded row (1, S). Lengths are tuples of ints or int tensors (both drawn;
  a 0-d tensor or a 1-tuple for an unbatched call). Target labels lie in [0, C) and differ
  from the blank: torch does not check either (it reads out of bounds for labels outside
  [0, C), and computes a number with a blank inside a target), so such calls are outside the
  spec: never drawn, not required to raise.
- The loss of a sample is -log P, P the sum over CTC alignments of prod_t exp(lp[t, label]),
  for the first input_lengths[n] frames (loss_reference/sequence.py). log_probs need not be
  normalized: torch's formula does not use it and the spec is that formula (unnormalized
  log-probabilities are drawn, and may give negative losses). An impossible alignment (target
  longer than the input, repeats without room for a blank, -inf on every path, input length 0
  with a nonempty target) has P = 0 and loss +inf; zero_infinity=True makes those losses and
  their gradients 0. Input length 0 with an empty target is the empty path: loss 0 (torch
  returns -0.0).
- 'none' gives (N,) (() unbatched); 'sum' adds the losses; 'mean' divides each loss by
  max(target_length, 1) and averages over the batch (torch 2.13: target length 0 divides by
  1). An infinite loss makes 'sum' and 'mean' +inf.
- torch rejects an empty batch (N = 0) and T = 0 ("log_probs tensor must not be empty"), so
  those are invalid calls, not empty-batch cases; so are lengths out of range, a blank outside
  [0, C), mismatched sizes and a concatenated target of the wrong length (invalid_calls).
- Gradient: log_probs only (targets and lengths are integers). The spec's gradient is the
  partial derivative of the loss, d loss / d lp[t, n, k] = -(posterior occupancy of class k
  at frame t) = -sum over states s labelled k of alpha_t(s) beta_t(s) / P, times the upstream
  gradient over the reduction's divisor, for t < input_lengths[n]; 0 at later frames; nan at
  the frames t < input_lengths[n] of a sample whose loss is +inf (the derivative of -log P at
  P = 0 does not exist; torch also gives nan), 0 there with zero_infinity. torch returns
  exp(lp) - occupancy instead: the gradient with respect to the logits *before* a
  log_softmax, which equals the true partial only after it is pushed through log_softmax's
  backward (whose Jacobian removes any multiple of exp(lp)). The documentation calls the
  argument "logarithmized probabilities (e.g. obtained with log_softmax)" and promises no
  such gradient, and for unnormalized log_probs (which torch accepts) exp(lp) - occupancy is
  the gradient of nothing, so the spec keeps the mathematical partial and torch's gradient is
  a documented known deviation (conformance/deviations/sequence.py). float16 and bfloat16:
  torch has no CPU kernel ("ctc_loss_cpu" not implemented), so torch declines them; the numpy
  candidate covers them.

Tolerance (conformance/accuracy.py; per sample n, from estimates of the occupancies gamma and
the loss by a float64 log-space pass, the built-in numpy candidate's recursions, which the
certified reference checks):

- Condition. The recursion adds, at each frame, a log-sum-exp of up to three alphas to a
  log-probability; its rounding errs by u times the size of the partial path cost. With
  c_t = sum over frames t' <= t of sum_k gamma_t'k |lp_t'k| (the expected cost of a path up to
  frame t, which bounds |log alpha| on the paths that carry the probability), the loss's scale
  is S_n = |loss_n| + sum over t < input_lengths[n] of (1 + c_t): the errors of the frames add
  up. 'none' judges each S_n alone (1 term); 'sum' adds the S_n (N terms); 'mean' adds
  S_n / (N max(target_length_n, 1)) (N terms).
- Depth 10 per frame (three-way log-sum-exp: maximum, subtractions, exp 2, additions, log 2,
  add the maximum, add lp), which also covers the final log, the division and the upstream.
- Gradient: the occupancy gamma_tk comes from exp(log alpha + log beta - log P - lp), whose
  relative error is the sum of the errors of the three logs: scale |g_n| / divisor_n times
  gamma_tk (2 (S_n + |log gamma_tk|) + |lp_tk| + 1), depth 10. S_n bounds the logs of the
  paths that carry the probability; log alpha + log beta of a rare state is log(gamma_tk P)
  + lp_tk, |log gamma_tk| beyond them (a state of occupancy 1e-132 behind a path of cost
  300: its exponent, about -304, rounds by 304 u in any log-space float64 computation; soak
  quick seed 130). Entries that underflow err by subnormal units.
- A single alignment (only one path of positive probability) makes the loss a plain sum of
  log-probabilities, often an exact tie of the dtype: the reference sums it exactly.
- Non-finite values are judged exactly: +inf losses, nan gradients where the loss is +inf.
"""

from __future__ import annotations

import numpy as np

from loss_reference import ctc_lattice as lattice
from loss_reference import sequence as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..cases import Case
from . import InvalidCall, Spec, reduction_variants
from .sequence_cases import ctc_cases, edge_cases
from .speed import in_dtype, ladder, log_softmax, normal_values, typical_case, variant

DEPTH = 10
POSITIONAL = ("log_probs", "targets", "input_lengths", "target_lengths")


def _variants():
    return reduction_variants()


def _call_args(case):
    a = case.args
    return (a["log_probs"], a["targets"], a["input_lengths"], a["target_lengths"],
            case.options.get("blank", 0))


def _reference(case):
    o = case.options
    return ref.ctc_loss(*_call_args(case), o.get("reduction", "mean"),
                        o.get("zero_infinity", False), fmt=format_of(case.dtype))


def _reference_grad(case):
    o = case.options
    return {"log_probs": ref.ctc_loss_grad(case.grad_output, *_call_args(case),
                                           o.get("reduction", "mean"),
                                           o.get("zero_infinity", False),
                                           fmt=format_of(case.dtype))}


_LAST = {}  # the sizes of the last case asked about: its value and gradient checks share them


def _sizes(case):
    """Per sample: the condition scale S_n, the occupancies (T, N, C) and |lp| (T, N, C),
    all float64 (with the Problem)."""
    if _LAST.get("args") is not case.args:
        _LAST.clear()
        _LAST.update(args=case.args, sizes=_compute_sizes(case))
    return _LAST["sizes"]


def _compute_sizes(case):
    p = lattice.problem(*_call_args(case))
    losses, occupancy = ref.estimates(p)
    frames = p.log_probs.shape[0]
    used = np.arange(frames)[:, None] < p.input_lengths[None]
    with np.errstate(invalid="ignore", over="ignore"):
        size = np.where(np.isfinite(p.log_probs), np.abs(p.log_probs), 0.0)
        cost = np.cumsum(np.where(used, (occupancy * size).sum(axis=2), 0.0), axis=0)
        scale = np.where(used, 1 + cost, 0.0).sum(axis=0) + np.where(np.isfinite(losses),
                                                                     np.abs(losses), 0.0)
    return p, scale, occupancy, size


def _divisors(p, reduction):
    if reduction != "mean":
        return np.ones(p.labels.shape[0])
    return np.maximum(p.target_lengths, 1) * float(p.labels.shape[0])


def _magnitude(case):
    p, scale, _, _ = _sizes(case)
    reduction = case.options.get("reduction", "mean")
    if reduction == "none":
        return Magnitude(scale.reshape(()) if p.unbatched else scale, 1, DEPTH)
    total = float(np.sum(scale / _divisors(p, reduction)))
    return Magnitude(np.array(total), max(p.labels.shape[0], 1), DEPTH)


def _grad_magnitudes(case):
    p, scale, occupancy, size = _sizes(case)
    reduction = case.options.get("reduction", "mean")
    batch = p.labels.shape[0]
    g = np.abs(np.asarray(case.grad_output, np.float64)).reshape(-1)
    g = np.broadcast_to(g, (batch,)) if g.size == 1 else g
    factor = (g / _divisors(p, reduction))[None, :, None]
    with np.errstate(divide="ignore"):
        rare = np.where(occupancy > 0, -np.log(occupancy), 0.0)  # |log gamma|: gamma <= 1
    out = factor * occupancy * (2 * (scale[None, :, None] + rare) + size + 1)
    if p.unbatched:
        out = out[:, 0]
    return {"log_probs": Magnitude(out, 1, DEPTH)}


def _invalid_calls():
    """Calls torch 2.13 CPU rejects (each verified), that a conforming candidate must reject."""
    rng = np.random.default_rng(0)
    lp = np.log(rng.dirichlet(np.ones(4), (5, 2)))
    tg = np.array([[1, 2, 2], [3, 1, 0]])
    ok = (lp, tg, (5, 4), (3, 2))

    def call(*args, **options):
        return dict(zip(POSITIONAL, args)), options

    calls = [
        ("input-length-over-T", "input_lengths 6 > T = 5", call(lp, tg, (6, 4), (3, 2))),
        ("target-length-over-S", "target_lengths 4 > S = 3", call(lp, tg, (5, 4), (4, 2))),
        ("negative-input-length", "input_lengths -1", call(lp, tg, (-1, 4), (3, 2))),
        ("negative-target-length", "target_lengths -1", call(lp, tg, (5, 4), (-1, 2))),
        ("blank-equals-C", "blank 4 with C = 4", call(*ok, blank=4)),
        ("blank-negative", "blank -1", call(*ok, blank=-1)),
        ("log-probs-4d", "log_probs (1, 5, 2, 4)", call(lp[None], tg, (5, 4), (3, 2))),
        ("unbatched-with-batch-lengths", "log_probs (5, 4) but two input lengths",
         call(lp[:, 0], tg, (5, 4), (3, 2))),
        ("input-lengths-count", "three input lengths for N = 2", call(lp, tg, (5, 4, 3), (3, 2))),
        ("target-lengths-count", "three target lengths for N = 2",
         call(lp, tg, (5, 4), (3, 2, 1))),
        ("concatenated-too-short", "1-D targets of 4 for sum(target_lengths) = 5",
         call(lp, np.array([1, 2, 2, 3]), (5, 4), (3, 2))),
        ("unbatched-padded-1d-target", "unbatched, 1-D target of 4 for target_length 3 (a "
         "1-D target is the concatenation: exactly sum(target_lengths) long)",
         call(lp[:, 0], np.array([1, 2, 2, 0]), (5,), (3,))),
        ("targets-3d", "targets (1, 2, 3)", call(lp, tg[None], (5, 4), (3, 2))),
        ("targets-rows", "targets has 1 row for N = 2", call(lp, tg[:1], (5, 4), (3, 2))),
        ("float-lengths", "input_lengths and target_lengths are floating arrays",
         call(lp, tg, np.array([5.0, 4.0]), np.array([3.0, 2.0]))),
        ("integer-log-probs", "log_probs is int64", call(np.zeros((5, 2, 4), np.int64), tg,
                                                          (5, 4), (3, 2))),
        ("empty-batch", "N = 0: torch rejects an empty log_probs",
         call(np.zeros((5, 0, 4)), np.zeros((0, 3), np.int64), (), ())),
        ("no-frames", "T = 0: torch rejects an empty log_probs",
         call(np.zeros((0, 2, 4)), tg, (0, 0), (0, 0))),
        ("unknown-reduction", "reduction 'avg'", call(*ok, reduction="avg")),
    ]
    out = []
    for call_id, reason, (args, options) in calls:
        opts = {"blank": 0, "reduction": "mean", "zero_infinity": False, **options}
        out.append(InvalidCall(call_id, reason, Case("float32", args, opts)))
    return out


def _mean_divisors(case, none_shape):
    """'mean' divides each sample's loss by N max(target length, 1)."""
    p = lattice.problem(*_call_args(case))
    divisors = _divisors(p, "mean").astype(np.int64)
    return int(divisors[0]) if none_shape == () else divisors.reshape(none_shape)


# --- speed ladder --------------------------------------------------------------------------------

# (frames T, batch N, classes C), targets T/8 long: log_probs of 640, 256K, 1M, 4M and 32M
# elements; the recursion's lattice of 80, 135K, 1.1M, 2.1M and 17M cells (torch takes about
# 50 ns a cell here, the forward+backward three times that).
SPEED_SIZES = ((16, 4, 10), (128, 32, 64), (256, 64, 64), (256, 128, 128), (512, 256, 256))
TARGET_SHARE = 8  # a target is T / 8 labels long


def _speed_case(size, dtype, rng):
    """Log-softmax of N(0,1) logits; every sample T frames and a target of T/8 labels (blank
    0 excluded), lengths as int64 arrays; 'mean', zero_infinity False."""
    frames, batch, classes = size
    logits = normal_values(size, dtype, rng)
    log_probs = log_softmax(logits)
    length = max(frames // TARGET_SHARE, 1)
    args = {"log_probs": in_dtype(log_probs, dtype),
            "targets": rng.integers(1, classes, (batch, length)),
            "input_lengths": np.full(batch, frames, dtype=np.int64),
            "target_lengths": np.full(batch, length, dtype=np.int64)}
    return typical_case(dtype, args, {"blank": 0, "reduction": "mean", "zero_infinity": False})


def _speed_output(case):
    """(N,) for 'none', a scalar otherwise."""
    return np.shape(case.args["log_probs"])[1:2] if case.options["reduction"] == "none" else ()


def _lattice_cells(case):
    """The CTC recursion's work: T x N x (2 L + 1) cells."""
    frames, batch, _ = np.shape(case.args["log_probs"])
    return int(frames * batch * (2 * np.shape(case.args["targets"])[1] + 1))


SPEED = ladder(_speed_case, read=POSITIONAL, kernel="logaddexp", output=_speed_output,
               elements=_lattice_cells, differentiated=("log_probs",), sizes=SPEED_SIZES,
               variants=(("none", variant(_speed_output, reduction="none")),),
               inputs="log-softmax of N(0,1) logits, targets T/8 long, blank 0, 'mean'")

SPECS = (Spec(
    name="ctc_loss", family="sequence", positional=POSITIONAL, keyword_arrays=(),
    variants=_variants(), cases=ctc_cases, edge_cases=edge_cases,
    invalid_calls=_invalid_calls, reference=_reference, magnitude=_magnitude,
    differentiable=("log_probs",), reference_grad=_reference_grad,
    grad_magnitudes=_grad_magnitudes, mean_divisor=_mean_divisors, speed=SPEED,
),)
