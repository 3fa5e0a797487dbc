"""torch 2.13's known deviations in the classification family (cross_entropy, nll_loss)."""

from __future__ import annotations

import numpy as np

from loss_reference import classification as ref
from loss_reference.formats import FORMATS

from ..cases import Case
from . import KnownDeviation

_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore"}
HALF_ROUNDS_TO_INF = 65520.0  # float16's max 65504 plus half its ulp there


@np.errstate(**_QUIET)
def _parts(case: Case):
    """(rows, smoothing, reduction, nlp (M, C) with masked classes at +inf) in float64."""
    o = case.options
    rows = ref.rows_of(case.args["input"], case.args["target"], case.args.get("weight"),
                       o.get("ignore_index", ref.DEFAULT_IGNORE_INDEX))
    x = rows.x
    lse = np.logaddexp.reduce(x, axis=1, keepdims=True) if x.size else np.zeros((len(x), 1))
    return rows, float(o.get("label_smoothing", 0.0)), o["reduction"], lse - x


def _half_sums_overflow(loss: str):
    """float16 only: whether a sum torch forms in float16 before its final division leaves the
    range: the smoothing sum over classes per row, the sums over rows of the nll and smoothing
    parts (and of the probability-target losses), the sum of the weights W, and for a weighted
    'mean' each part's sum divided by W (torch divides before scaling by 1 - e and e / C)."""
    @np.errstate(**_QUIET)
    def applies(case: Case) -> bool:
        if case.dtype != "float16" or np.size(case.args["input"]) == 0:
            return False
        rows, smoothing, reduction, nlp = _parts(case)
        M = rows.x.shape[0]
        w = np.abs(rows.weight)[None, :]
        finite = np.isfinite(rows.x)
        quantities = []
        if loss == "nll_loss":
            per_row = np.abs(rows.weight[rows.t] * rows.x[np.arange(M), rows.t])
            quantities.append(np.where(rows.valid, per_row, 0.0))
        elif rows.soft:
            q = w * np.abs(ref.smoothed_targets(rows.target, smoothing, rows.x.shape[1]))
            quantities.append(np.sum(np.where(finite, q * np.abs(nlp), 0.0), axis=1))
            # the float16 log-probabilities themselves, where a term counts: from 65520 on
            # they round to -inf although q_c * log p_c and the loss stay in range
            if np.any(finite & (q != 0) & (np.abs(nlp) >= HALF_ROUNDS_TO_INF)):
                return True
        else:
            w_t = np.abs(rows.weight[rows.t])
            quantities.append(np.where(rows.valid & np.isfinite(nlp[np.arange(M), rows.t]),
                                       w_t * np.abs(nlp[np.arange(M), rows.t]), 0.0))
            if smoothing:
                smooth = np.sum(np.where(finite, w * np.abs(nlp), 0.0), axis=1)
                quantities.append(np.where(rows.valid, smooth, 0.0))
        limit = FORMATS["float16"].max_finite
        if any(np.any(q > limit) for q in quantities):
            return True
        if reduction == "none":
            return False
        totals = [float(np.sum(q)) for q in quantities]
        if reduction == "mean" and not rows.soft:
            weight_sum = float(np.sum(np.where(rows.valid, rows.weight[rows.t], 0.0)))
            # each part is divided by W before the smoothing factors scale it
            quotients = [t / abs(weight_sum) for t in totals if weight_sum]
            totals += quotients + [abs(weight_sum)]
        return any(t > limit for t in totals)

    return applies


@np.errstate(**_QUIET)
def masked_class_with_zero_coefficient(case: Case) -> bool:
    """A counted row has a -inf logit at a class whose coefficient in the loss is 0: a zero
    class weight under label smoothing, or a zero w_c p'_c with probability targets."""
    rows, smoothing, _, _ = _parts(case)
    masked = np.isneginf(rows.x) & rows.valid[:, None]
    if not masked.any():
        return False
    if rows.soft:
        q = rows.weight[None, :] * ref.smoothed_targets(rows.target, smoothing, rows.x.shape[1])
        return bool(np.any(masked & (q == 0)))
    return bool(smoothing and np.any(masked & (rows.weight[None, :] == 0)))


@np.errstate(**_QUIET)
def log_probability_overflows(case: Case) -> bool:
    """A counted row has a finite logit whose log-probability lies beyond the dtype's range
    (its -log_softmax rounds to -inf in the dtype) at a class its loss reads: any class with
    probability targets or label smoothing, else the target's."""
    rows, smoothing, _, nlp = _parts(case)
    if rows.x.size == 0:
        return False
    threshold = FORMATS[case.dtype].overflow_threshold
    beyond = np.isfinite(rows.x) & (nlp >= threshold) & rows.valid[:, None]
    if not (rows.soft or smoothing):
        beyond = beyond[np.arange(rows.x.shape[0]), rows.t]
    return bool(beyond.any())


@np.errstate(**_QUIET)
def masked_class_with_zero_gradient_coefficient(case: Case) -> bool:
    """Probability targets and a row with a masked class (a -inf logit in a row that has a
    log-softmax) whose upstream gradient is 0, or label_smoothing = 1: the target's gradient
    a (1 - e) w_c nlp_c or the weight's a p'_c nlp_c has a zero coefficient there."""
    rows, smoothing, reduction, _ = _parts(case)
    if not rows.soft or case.grad_output is None or rows.x.size == 0:
        return False
    x = rows.x
    defined = np.any(np.isfinite(x), axis=1) & ~np.any(x == np.inf, axis=1)
    masked_rows = defined & np.any(np.isneginf(x), axis=1)
    if not masked_rows.any():
        return False
    if smoothing == 1:
        return True
    g = np.asarray(case.grad_output, np.float64)
    g = g.reshape(-1) if reduction == "none" else np.full(x.shape[0], float(g))
    return bool(np.any(masked_rows & (g == 0)))


@np.errstate(**_QUIET)
def smoothed_target_gradient_overflows(case: Case) -> bool:
    """Probability targets with label smoothing: a counted row's upstream factor (g, or g / N
    for 'mean') times a class weight times a finite logit's -log_softmax reaches the dtype's
    overflow threshold, before torch scales it by 1 - e."""
    rows, smoothing, reduction, nlp = _parts(case)
    if not (rows.soft and smoothing) or case.grad_output is None or rows.x.size == 0:
        return False
    M = rows.x.shape[0]
    a = np.abs(ref.upstream_rows(case.grad_output, rows, reduction))
    if reduction == "mean":
        a = a / M
    product = a[:, None] * np.abs(rows.weight)[None, :] * np.abs(nlp)
    counted = np.isfinite(rows.x) & rows.valid[:, None]
    return bool(np.any(counted & (product >= FORMATS[case.dtype].overflow_threshold)))


FLOAT32_LANES = 16  # float32 lanes of an AVX-512 register: one holds the max's exp(0) = 1
HALF_ULP_OF_ONE = 2.0 ** -24


@np.errstate(**_QUIET)
def float32_tail_absorbed(case: Case) -> bool:
    """float32, and a counted row whose largest logit stands so far above the rest that the
    exponentials exp(x_j - m) below half an ulp of 1 add up to more than a few ulps of its
    log-sum-exp (the share torch's vectorised sum loses: those in the max's lane)."""
    if case.dtype != "float32" or np.size(case.args["input"]) == 0:
        return False
    rows, _, _, _ = _parts(case)
    x = np.where(np.isfinite(rows.x), rows.x, -np.inf)
    m = np.max(x, axis=1, keepdims=True, initial=-np.inf)
    e = np.exp(x - np.where(np.isfinite(m), m, 0.0))
    small = np.where(e < HALF_ULP_OF_ONE, e, 0.0).sum(axis=1)
    lost = small / FLOAT32_LANES
    return bool(np.any(rows.valid & (lost > 8 * HALF_ULP_OF_ONE)))


def float32_tail_absorbed_target_gradient(case: Case) -> bool:
    """``float32_tail_absorbed`` with probability targets: the target's gradient is the
    log-probability itself, a (1 - e) w_c nlp_c, and inherits its error."""
    return (np.asarray(case.args["target"]).dtype.kind == "f"
            and float32_tail_absorbed(case))


def weight_sum_quotient_overflows(loss: str):
    """A weighted 'mean' with index targets, any dtype: whether a quotient by the sum of the
    counted weights W that torch forms before anything else scales it leaves the dtype's range
    (W tiny, e.g. subnormal): the backward's first step, the upstream gradient g / W, and with
    label smoothing cross_entropy's two parts, each sum over rows divided by W before its factor
    1 - e or e / C."""
    @np.errstate(**_QUIET)
    def applies(case: Case) -> bool:
        o = case.options
        if (o.get("reduction") != "mean" or case.args.get("weight") is None
                or np.size(case.args["input"]) == 0):
            return False
        rows, smoothing, _, nlp = _parts(case)
        if rows.soft:
            return False
        M = rows.x.shape[0]
        weight_sum = abs(float(np.sum(np.where(rows.valid, rows.weight[rows.t], 0.0))))
        if weight_sum == 0:
            return False
        upstream = np.abs(np.asarray(1.0 if case.grad_output is None else case.grad_output,
                                     np.float64))
        quantities = [float(np.max(upstream, initial=0.0)) / weight_sum]
        if loss == "cross_entropy" and smoothing:
            w_t = np.abs(rows.weight[rows.t])
            target_part = np.where(rows.valid, w_t * np.abs(nlp[np.arange(M), rows.t]), 0.0)
            finite = np.isfinite(nlp)
            smooth = np.where(finite, np.abs(rows.weight)[None, :] * np.abs(nlp), 0.0)
            smooth_part = np.where(rows.valid, np.sum(smooth, axis=1), 0.0)
            quantities += [float(np.sum(target_part)) / weight_sum,
                           float(np.sum(smooth_part)) / weight_sum]
        return any(q > FORMATS[case.dtype].max_finite for q in quantities)

    return applies


_QUOTIENT_REASON = (
    "torch 2.13 divides by the sum of the counted weights W in the input's dtype before "
    "anything else scales the quotient: its backward starts from g / W, and {value}; where W "
    "is tiny (a subnormal sum of weights) that quotient overflows to inf and the result is inf "
    "or nan (inf * 0, inf - inf) although the exact one is finite: {example}")


_HALF_REASON = (
    "torch 2.13 CPU forms {what} in float16 before dividing, so it returns inf (or nan, "
    "inf / inf) where that sum exceeds 65504 although the result is finite; {example}")

VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = (
    KnownDeviation(
        impl="torch", loss="nll_loss", applies=weight_sum_quotient_overflows("nll_loss"),
        checks=("gradient",),
        reason=_QUOTIENT_REASON.format(
            value="its value is that one final quotient",
            example="F.nll_loss(torch.full((2, 3), -1.0986), torch.tensor([0, 1]), "
                    "weight=torch.tensor([1e-40, 0., 1.])) has the gradient [[-inf, 0, 0], "
                    "[0, nan, 0]], exact [[-1, 0, 0], [0, 0, 0]] (float64 torch gives it)")),
    KnownDeviation(
        impl="torch", loss="cross_entropy",
        applies=weight_sum_quotient_overflows("cross_entropy"),
        reason=_QUOTIENT_REASON.format(
            value="with label smoothing its value divides each part's sum by W before the "
                  "factors 1 - e and e / C",
            example="x = torch.zeros(2, 3), target [0, 1], weight [1e-40, 0, 1] (float32): "
                    "F.cross_entropy's gradient is [[nan, inf, inf], [nan, nan, nan]], exact "
                    "[[-2/3, 1/3, 1/3], [0, 0, 0]]; with label_smoothing=0.01 the value is inf, "
                    "exact 7.32e37 (float64 torch gives both)")),
    KnownDeviation(
        impl="torch", loss="nll_loss", applies=_half_sums_overflow("nll_loss"),
        reason=_HALF_REASON.format(
            what="the sum over rows of w_t x_t (and the sum of the weights for 'mean')",
            example="e.g. F.nll_loss(torch.full((3, 1), -3e4, dtype=torch.float16), "
                    "torch.tensor([0, 0, 0])) is inf, exact 30000")),
    KnownDeviation(
        impl="torch", loss="cross_entropy", applies=_half_sums_overflow("cross_entropy"),
        reason=_HALF_REASON.format(
            what="the log-probabilities log_softmax(x), the smoothing sum over classes of "
                 "w_c log_softmax(x)_c, the sums over rows, the sum of the weights W and (for "
                 "a weighted 'mean') each sum over rows divided by W before its factor "
                 "1 - e or e / C",
            example="e.g. F.cross_entropy(torch.zeros(1, 8192, dtype=torch.float16), "
                    "torch.tensor([0]), label_smoothing=0.1, reduction='none') is [inf], "
                    "exact log(8192) = 9.0109; a 'mean' over 40 rows of probability targets "
                    "with logits of size 1e3 is inf, exact 2845.2; F.cross_entropy(x, p, "
                    "reduction='sum') with x = [[65504, -41.75]] and p = [[0.5, 0.5]] in "
                    "float16 is inf (log_softmax(x)[1] = -65545.75 rounds to -inf), exact "
                    "32772.9")),
    KnownDeviation(
        impl="torch", loss="cross_entropy", applies=float32_tail_absorbed, checks=("value",),
        reason="torch 2.13 CPU sums a row's exponentials exp(x_j - m) in float32 vector lanes, "
               "one of which starts from the max's exp(0) = 1 and rounds away every term below "
               "2**-24 added to it: with one logit far above the others (a confident "
               "prediction) a sixteenth of the tail's mass is lost, and the loss -log softmax "
               "errs by about 6 % at any vocabulary size: x = 2 randn(64, 4096), x[:, 0] += 20, "
               "F.cross_entropy(x.float(), zeros(64), reduction='none') is off its float64 "
               "value by 9 % (2.7e-6 absolute) at worst, by 6 % (1.3e-4) at 262,144 classes; "
               "the gradient (softmax - onehot) is not affected"),
    KnownDeviation(
        impl="torch", loss="cross_entropy", applies=float32_tail_absorbed_target_gradient,
        checks=("gradient",),
        reason="torch 2.13 CPU's float32 log-softmax loses a sixteenth of a confident row's "
               "tail mass (the value's deviation above), and with probability targets the "
               "target's gradient g (1 - e) w_c (-log_softmax(x)_c) carries that error: "
               "x = 2 randn(64, 4096) (float64, seed 0), x[:, 0] += 20, p = softmax(randn(64, "
               "4096)); F.cross_entropy(x.float(), p.float().requires_grad_(), "
               "reduction='sum').backward() gives p.grad[:, 0] off its float64 value by 9 % "
               "(2.7e-6 absolute, 0.0059 at most); the input's gradient is not affected, but "
               "a deviation excuses a whole check"),
    KnownDeviation(
        impl="torch", loss="cross_entropy", applies=masked_class_with_zero_coefficient,
        reason="torch 2.13 multiplies each log-probability by its coefficient (w_c p'_c, or "
               "w_c in the smoothing term) also where the logit is -inf, so a masked class "
               "with a zero coefficient gives 0 * -inf = nan where its term is 0 in the limit "
               "(the loss is finite and the gradient is): F.cross_entropy(torch.tensor([[1., "
               "-inf, 2.]]), torch.tensor([[1., 0., 0.]])) is nan, exact log(1 + e) = 1.3133; "
               "with index target 0, weight [1, 0, 1] and label_smoothing 0.1 it is nan, exact "
               "0.9 * 1.3133 + 0.1 / 3 * (1.3133 + 0.3133) = 1.2362; so are the gradients there "
               "of the weight (p = [[1., 0., 0.]], weight ones requiring grad: weight.grad is "
               "[1.3133, nan, 0], exact [1.3133, 0, 0]) and of the target at a zero weight "
               "(weight [1, 0, 1]: p.grad[0, 1] is nan, exact 0)"),
    KnownDeviation(
        impl="torch", loss="cross_entropy", applies=log_probability_overflows,
        reason="torch 2.13 forms the log-probabilities in the input's dtype, and one below "
               "the dtype's range rounds to -inf there, although the loss reads it only "
               "through a coefficient: times 0 it is nan, times anything else inf, where the "
               "exact loss is finite: x = torch.tensor([[17., 65504., -17.]], dtype="
               "torch.float16) (log_softmax(x)[0, 2] = -65521 < -65520); F.cross_entropy(x, "
               "torch.tensor([[1., 0., 0.]], dtype=torch.float16), reduction='sum') is nan and "
               "F.cross_entropy(x, torch.tensor([0]), label_smoothing=0.1, reduction='sum') is "
               "inf, exact 65487 and 0.9 * 65487 + 0.1 / 3 * (65487 + 0 + 65521) = 63305 "
               "(quick profile, seed 3); with an index target the target's alone, under a "
               "weight below 1: F.cross_entropy(torch.tensor([[780., -65504., 0.]], dtype="
               "torch.float16), torch.tensor([1]), weight=torch.tensor([1., 0.25, 1.], dtype="
               "torch.float16)) is inf, exact 0.25 * 66284 = 16571 (soak, quick profile, seed "
               "282)"),
    KnownDeviation(
        impl="torch", loss="cross_entropy", applies=smoothed_target_gradient_overflows,
        checks=("gradient",),
        reason="torch 2.13's backward of label smoothing with probability targets forms the "
               "smoothed target's gradient, g w_c log_softmax_c (g / N for 'mean'), in the "
               "input's dtype and only then scales it by 1 - e, so in float16 it overflows to "
               "inf where the target's exact gradient is finite: x = torch.tensor([[0., "
               "-7244.], [0., 0.]], dtype=torch.float16), p = [[1., 0.], [1., 0.]] requiring "
               "grad, weight [2.5, 2.5], label_smoothing=0.05, reduction='sum', upstream "
               "-3.664: p.grad[0, 1] is -inf, exact -0.95 * 3.664 * 2.5 * 7244 = -63038 "
               "(without smoothing torch gives -61568 for upstream -3.4: no overflow; soak "
               "quick profile, seed 59)"),
    KnownDeviation(
        impl="torch", loss="cross_entropy", applies=masked_class_with_zero_gradient_coefficient,
        checks=("gradient",),
        reason="torch 2.13 multiplies a masked class's infinite log-probability by the "
               "coefficient of the target's gradient, g (1 - e) w_c, and of the weight's, "
               "g p'_c, also where that is 0 (a zero upstream gradient, or label_smoothing = 1), "
               "giving nan where the loss does not depend on p_c (or on w_c through that row) "
               "and the gradient is 0: x = torch.tensor([[1., -inf, 2.]]); p = torch.tensor("
               "[[0.5, 0., 0.5]], requires_grad=True); F.cross_entropy(x, p, "
               "label_smoothing=1.0).backward() leaves p.grad = [[0, nan, 0]], exact [[0, 0, "
               "0]]; with reduction='none', upstream [0., 1.] and rows [[1, -inf, 2], [1, 0, 2]], "
               "p = [[0.5, 0.5, 0], [0.5, 0.5, 0]] and a weight of ones, p.grad[0, 1] and "
               "weight.grad[1] are nan, exact 0 and 0.5 * 2.4076 = 1.2038"),
)
