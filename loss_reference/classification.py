"""Exact references for the classification family: cross_entropy and nll_loss.

Inputs are (C,), (N, C) or (N, C, d1, ...); the class axis (1, or 0 when unbatched) is moved
last and the rest flattened into M rows of C classes. Per row i with index target t_i:

- nll_loss: -w_t x_t (x is read as log-probabilities, any real);
- cross_entropy: (1 - e) w_t nlp_t + (e / C) sum_c w_c nlp_c, with nlp_c = lse - x_c the
  negative log-softmax (e = label_smoothing, torch's formula), and with probability targets p
  (rows of C floats) sum_c w_c p'_c nlp_c, p' = (1 - e) p + e / C.

Rows whose target equals ignore_index contribute nothing (loss 0, gradient 0). 'mean' divides
by W = sum of w_t over the rows not ignored (their count without weight) for index targets,
by M for probability targets; the mean of nothing is nan (0 / 0), and a W of exactly 0 gives the
IEEE quotient of the exact sums (nan for 0 / 0 and for nll_loss's sum that holds a zero
weight times an infinite log-probability, else an infinity: ``decisions.quotient_by_zero``;
cross_entropy's masked class with a zero weight adds 0 there, as in its sums). Gradients where
W = 0 and some row counts are undefined (every candidate divides by zero its own way):
EvaluationError.

lse is certified as m + log1p(S'), m the row's largest finite logit and S' the sum of
exp(x_j - m) over the other finite classes, so every nlp_c = (m - x_c) + log1p(S') is a sum of
non-negative parts (no cancellation), and the softmax gradient uses exclusive sums (1 - softmax
of the target as sum_{j != t} e_j / E) for the same reason.

Infinite logits are decided here, exactly, outside the engine: a -inf logit is a masked class
(softmax 0, nlp +inf: a loss term w_c nlp_c with w_c != 0 is infinite, one with w_c = 0 (or
p'_c = 0) contributes nothing, its limit); a row with a +inf logit, or with no finite logit,
has no log-softmax (inf - inf) and its loss and gradient are nan, as in torch.

With probability targets the loss is also differentiable in the target and the class weight:
d loss / d p_ic = a_i (1 - e) w_c nlp_ic and d loss / d w_c = sum_i a_i p'_ic nlp_ic, a_i the
row's upstream gradient (divided by M for 'mean'). At a masked class nlp_ic = +inf: a product
whose coefficient (a_i (1 - e) w_c, or a_i p'_ic) is 0 contributes 0, the same limit as the
loss's (the loss does not depend on p_ic, or on w_c through that row), any other is the
infinity of its sign, and the weight's sum over rows of +inf and -inf is nan. A row without a
log-softmax makes its target gradient and the whole weight gradient nan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import classification_fast
from .ball_functions import flags
from .decisions import float_sum, quotient_by_zero
from .balls import LD
from .engine import (EvaluationError, Evaluated, evaluate, evaluate_row_sums,
                     evaluate_total, filled)
from .formats import FORMATS, Format

LOSSES = ("cross_entropy", "nll_loss")
DEFAULT_IGNORE_INDEX = -100
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore"}


# --- layout ------------------------------------------------------------------------------------

@dataclass
class Rows:
    """A call laid out as rows: x (M, C), target (M,) int or (M, C) float, and what counts."""

    x: np.ndarray
    target: np.ndarray
    soft: bool
    batch_shape: tuple  # the shape of 'none'
    input_shape: tuple
    weight: np.ndarray  # (C,), ones when none was given
    valid: np.ndarray  # (M,) rows that count (not ignore_index)
    t: np.ndarray  # (M,) target classes, 0 where ignored (index targets)


def rows_of(input, target, weight=None, ignore_index=DEFAULT_IGNORE_INDEX) -> Rows:
    """Move the class axis last and flatten the rest; decide which rows count."""
    x = np.asarray(input, np.float64)
    classes = x.shape[0] if x.ndim == 1 else x.shape[1]
    batch = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
    xr = x.reshape(1, classes) if x.ndim == 1 else np.moveaxis(x, 1, -1).reshape(-1, classes)
    tgt = np.asarray(target)
    soft = tgt.dtype.kind == "f"
    w = np.ones(classes) if weight is None else np.asarray(weight, np.float64)
    if soft:
        tr = (tgt.reshape(1, classes) if x.ndim == 1
              else np.moveaxis(tgt.astype(np.float64), 1, -1).reshape(-1, classes))
        valid = np.ones(xr.shape[0], dtype=bool)
        t = np.zeros(xr.shape[0], dtype=np.int64)
    else:
        tr = tgt.reshape(-1).astype(np.int64)
        valid = tr != ignore_index
        t = np.where(valid, tr, 0)
    return Rows(xr, tr, soft, batch, x.shape, w, valid, t)


def to_input_layout(values: np.ndarray, input_shape) -> np.ndarray:
    """(M, C) rows back to the input's shape (class axis at 1, or 0 when unbatched)."""
    if len(input_shape) == 1:
        return values.reshape(input_shape)
    moved = values.reshape((input_shape[0],) + tuple(input_shape[2:]) + (input_shape[1],))
    return np.moveaxis(moved, -1, 1)


# --- exact decisions on infinities ---------------------------------------------------------------

@dataclass
class Stats:
    """Per-row decisions: placeholder-finite logits, the row max and its class, the masks."""

    xs: np.ndarray  # x with non-finite entries replaced by the row max (finite placeholders)
    m: np.ndarray  # (M, 1) largest finite logit (0 for a row without one)
    k: np.ndarray  # (M,) its class
    finite: np.ndarray  # (M, C) 1.0 where the logit is finite
    others: np.ndarray  # (M, C) 1.0 where finite and not the max's class
    undefined: np.ndarray  # (M,) rows with a +inf logit or no finite logit


ROW_BLOCK = 1 << 16  # logits per block of rows in ``stats_of``: temporaries in the caches


def stats_of(x: np.ndarray) -> Stats:
    """Row statistics of logits x (M, C), decided exactly (by blocks of rows)."""
    M, C = x.shape
    step = max(1, ROW_BLOCK // max(C, 1))
    if M <= step:
        return _block_stats(x)
    st = Stats(np.empty((M, C)), np.empty((M, 1)), np.empty(M, np.int64), np.empty((M, C)),
               np.empty((M, C)), np.empty(M, bool))
    for start in range(0, M, step):
        block = slice(start, start + step)
        part = _block_stats(x[block])
        for name in ("xs", "m", "k", "finite", "others", "undefined"):
            getattr(st, name)[block] = getattr(part, name)
    return st


def _block_stats(x: np.ndarray) -> Stats:
    finite = np.isfinite(x)
    undefined = np.any(x == np.inf, axis=1) | ~np.any(finite, axis=1)
    masked = np.where(finite, x, -np.inf)
    k = np.argmax(masked, axis=1) if x.shape[1] else np.zeros(x.shape[0], dtype=np.int64)
    m = np.take_along_axis(masked, k[:, None], axis=1) if x.shape[1] else np.zeros((x.shape[0], 1))
    m = np.where(np.isfinite(m), m, 0.0)
    xs = np.where(finite, x, m)
    others = finite & (np.arange(x.shape[1])[None, :] != k[:, None])
    return Stats(xs, m, k, finite.astype(np.float64), others.astype(np.float64), undefined)


def _infinite_sum(coefficients, masked) -> np.ndarray:
    """Per row: sum of coefficient * (+inf) over masked entries, a zero coefficient adding
    nothing (the limit); 0.0 where no entry is infinite."""
    with np.errstate(**_QUIET):
        terms = np.where(masked & (coefficients != 0), np.sign(coefficients) * np.inf, 0.0)
        return terms.sum(axis=1) if terms.size else np.zeros(terms.shape[0])


def _specials(name, rows: Rows, st: Stats | None, smoothing: float) -> np.ndarray:
    """Per row the non-finite part of the loss (0.0 where it is finite), IEEE-combined as torch
    combines the nll and smoothing parts."""
    M, C = rows.x.shape
    valid = rows.valid
    if name == "nll_loss":
        x_t = rows.x[np.arange(M), rows.t]
        with np.errstate(**_QUIET):
            special = np.where(np.isfinite(x_t), 0.0, -rows.weight[rows.t] * x_t)
        return np.where(valid, special, 0.0)
    masked = st.finite == 0
    if rows.soft:
        q = rows.weight[None, :] * smoothed_targets(rows.target, smoothing, C)
        special = _infinite_sum(q, masked)
    else:
        w_t = rows.weight[rows.t]
        with np.errstate(**_QUIET):
            nll_part = np.where(masked[np.arange(M), rows.t] & (w_t != 0),
                                np.sign(w_t) * np.inf, 0.0)
            if smoothing == 0:
                special = nll_part
            else:
                smooth_part = _infinite_sum(np.broadcast_to(rows.weight, (M, C)), masked)
                special = (1 - smoothing) * nll_part + smoothing / C * smooth_part
    special = np.where(st.undefined, np.nan, special)
    return np.where(valid, special, 0.0)


def smoothed_targets(p, smoothing, classes):
    """p' = (1 - e) p + e / C in float64 (only to find its zeros and its largest entries)."""
    return p * (1 - smoothing) + smoothing / classes if smoothing else p


# --- values ------------------------------------------------------------------------------------

def ce_rows(smoothing, classes):
    """Engine function: per-row cross entropy with index targets."""
    def rows_loss(B, xs, m, others, x_t, w_t, w_row):
        L = B.log1p(B.sum(others * B.exp(xs - m), axis=-1))
        nll = w_t * ((m[:, 0] - x_t) + L)
        if smoothing == 0:
            return nll
        smooth = B.sum(w_row * ((m - xs) + L[:, None]), axis=-1)
        return (nll - nll * smoothing) + smooth * smoothing / classes
    return rows_loss


def soft_rows(smoothing, classes):
    """Engine function: per-row cross entropy with probability targets."""
    def rows_loss(B, xs, m, others, p, w_row):
        L = B.log1p(B.sum(others * B.exp(xs - m), axis=-1))
        q = target_distribution(p, smoothing, classes)
        return B.sum(w_row * q * ((m - xs) + L[:, None]), axis=-1)
    return rows_loss


def target_distribution(p, smoothing, classes):
    """p' = (1 - e) p + e / C as engine arithmetic (e / C is not a float: divide last)."""
    if not smoothing:
        return p
    return (p - p * smoothing) + (p * 0 + smoothing) / classes


def _nll_rows(B, x_t, w_t):
    return -(w_t * x_t)


def _engine_rows(name, rows: Rows, st: Stats | None, smoothing, special):
    """(engine function, its row arguments) for the finite part of every row."""
    M, C = rows.x.shape
    count = ~(special != 0) & rows.valid  # rows whose value is finite and counts
    w_t = np.where(count, rows.weight[rows.t], 0.0)
    if name == "nll_loss":
        x_t = rows.x[np.arange(M), rows.t]
        return _nll_rows, [np.where(count, x_t, 0.0), w_t]
    w_row = np.where(count[:, None] & (st.finite != 0), rows.weight[None, :], 0.0)
    if rows.soft:
        return soft_rows(smoothing, C), [st.xs, st.m, st.others, rows.target, w_row]
    x_t = st.xs[np.arange(M), rows.t]
    return ce_rows(smoothing, C), [st.xs, st.m, st.others, x_t, w_t, w_row]


def weights_counted(rows: Rows) -> np.ndarray:
    """(M,) w_t of the rows that count for 'mean' with index targets (0 where ignored)."""
    return np.where(rows.valid, rows.weight[rows.t], 0.0)


def mean_divisor(B, rows_count, counted, soft):
    """'mean' divides by M for probability targets, by W = sum w_t (``counted``: the w_t of
    the rows that count) for index targets."""
    return rows_count if soft else B.sum(counted)


def divisor_is_zero(rows: Rows, reduction) -> bool:
    """Whether a 'mean' divides by zero (no row, or a zero sum of the counted weights)."""
    if reduction != "mean":
        return False
    if rows.soft:
        return rows.x.shape[0] == 0
    return float_sum(weights_counted(rows)) == 0  # correctly rounded: exact for 0


def loss(name, input, target, weight, ignore_index, smoothing, reduction,
         fmt: Format) -> Evaluated:
    """The exact loss, reduced, rounded once to fmt."""
    rows = rows_of(input, target, weight, ignore_index)
    smoothing = float(smoothing) if name == "cross_entropy" else 0.0
    st = stats_of(rows.x) if name == "cross_entropy" else None
    special = _specials(name, rows, st, smoothing)
    function, args = _engine_rows(name, rows, st, smoothing, special)
    fast = (name == "cross_entropy" and classification_fast.applies(rows, fmt))
    fast_loss = classification_fast.soft_loss if rows.soft else classification_fast.loss
    if reduction == "none":
        if rows.x.shape[0] == 0:
            return filled(rows.batch_shape, 0.0)
        known = fast_loss(rows, st, reduction, smoothing) if fast else None
        out = evaluate(function, args, fmt, independent="rows", known=known)
        is_special = special != 0
        out.rounded[is_special] = special[is_special]
        out.exact[is_special] = special[is_special]
        return Evaluated(out.rounded.reshape(rows.batch_shape), out.exact.reshape(rows.batch_shape))
    if rows.x.shape[0] == 0 or divisor_is_zero(rows, reduction):
        return filled((), zero_divisor_value(name, input, target, weight, ignore_index,
                                             smoothing) if reduction == "mean" else 0.0)
    with np.errstate(**_QUIET):
        special_total = float(np.sum(special))
        if special_total != 0 or math.isnan(special_total):
            divisor = 1.0 if reduction == "sum" else (
                rows.x.shape[0] if rows.soft else float_sum(weights_counted(rows)))
            return filled((), special_total / divisor)
    count, soft = rows.x.shape[0], rows.soft

    def finish(B, total, counted):
        return total if reduction == "sum" else total / mean_divisor(B, count, counted, soft)

    known = fast_loss(rows, st, reduction, smoothing) if fast else None
    return evaluate_total(lambda B, *a: function(B, *a[:len(args)]), args, fmt, finish=finish,
                          shared=[weights_counted(rows)], known=known)


def zero_divisor_value(name, input, target, weight, ignore_index, smoothing: float) -> float:
    """'mean' with no row counting, or a zero sum of weights: torch's IEEE quotients
    (1 - e) (A / 0) + (e / C) (B / 0), A the nll part and B the smoothing part of the sum,
    each with its exact sign (``zero_divisor_numerators``)."""
    rows = rows_of(input, target, weight, ignore_index)
    if not rows.valid.any():
        return math.nan
    return quotients_by_zero(zero_divisor_numerators(name, input, target, weight,
                                                     ignore_index, smoothing),
                             smoothing, rows.x.shape[1])


def quotients_by_zero(numerators: tuple, smoothing: float, classes: int) -> float:
    """(1 - e) (A / 0) + (e / C) (B / 0) for ``numerators`` (A, B) in IEEE arithmetic."""
    quotient_a = quotient_by_zero(numerators[0])
    if smoothing == 0:
        return quotient_a
    return (1 - smoothing) * quotient_a + smoothing / classes * quotient_by_zero(numerators[1])


@np.errstate(**_QUIET)
def zero_divisor_numerators(name, input, target, weight, ignore_index, smoothing) -> tuple:
    """(A, B): the sums that a 'mean' over counted weights summing to 0 divides, each exact in
    sign (their magnitudes matter no further): A = sum w_t nlp_t (nll_loss: -w_t x_t), B =
    sum_i sum_c w_c nlp_ic (None without smoothing); their terms as the 'sum' takes them
    (nll_loss's 0 times a -inf log-probability is NaN; cross_entropy's masked class with a
    zero weight adds 0). Each is the certified 'sum' in float64 (A at smoothing 0, B as C
    times it at smoothing 1), whose nonzero rounding has the exact sign; float64 sums of the
    terms cancel to the wrong sign, or to 0 or away from it (rows shifted by a constant
    have equal nlp_t, which float64 log-sum-exps can tell apart)."""
    f64 = FORMATS["float64"]
    nll = loss(name, input, target, weight, ignore_index, 0.0, "sum", f64).rounded
    if name == "nll_loss" or smoothing == 0:
        return float(nll), None
    rows = rows_of(input, target, weight, ignore_index)
    st = stats_of(rows.x)
    # B's infinite part first: at smoothing 1 the 'sum' would meet 0 times A's infinities
    infinite = _infinite_sum(np.broadcast_to(rows.weight, rows.x.shape), st.finite == 0)
    infinite = np.where(rows.valid, np.where(st.undefined, np.nan, infinite), 0.0)
    special = float(np.sum(infinite))
    if special != 0 or math.isnan(special):
        return float(nll), special
    return float(nll), float(loss(name, input, target, weight, ignore_index, 1.0, "sum",
                                  f64).rounded)


# --- gradients -----------------------------------------------------------------------------------

def ce_grad(smoothing, classes, reduction, count):
    """Engine function: d loss / d x per row, index targets, scaled by the row's upstream a.

    Per row, with e_c = exp(x_c - m) (0 at masked classes), E = sum_c e_c and the row factor
    r = a w_t / (divisor E): r e_c off the target and -r rest at it, rest = sum_{j != t} e_j
    (no cancellation); label smoothing adds (e / C)(e_c W / E - w_c) a / divisor, W = sum w.
    Only the exponentials, one masked sum and one product per element are whole-size work."""
    def grad(B, xs, m, others, finite, is_t, t_is_max, x_t, t_finite, w_t, w_full, a,
             counted, weight):
        e = B.where(flags(finite), B.exp(xs - m), 0.0)
        s_others = B.sum(B.where(flags(others), e, 0.0), axis=-1)
        E = 1 + s_others
        e_t = B.where(flags(t_finite), B.exp(x_t - m[:, 0]), 0.0)
        rest = B.where(flags(t_is_max), s_others, E - e_t)  # sum_{j != t} e_j
        upstream = a if reduction != "mean" else a / mean_divisor(B, count, counted, False)
        if not smoothing:
            r = upstream * w_t / E
            return B.where(flags(is_t), -(rest * r)[:, None], e * r[:, None])
        hard = B.where(flags(is_t), -(rest / E)[:, None], e / E[:, None])  # e / E - [c = t]
        hard = hard * w_t[:, None]
        smooth = e * (B.sum(weight) / E)[:, None] - w_full
        # (1 - e) and e / C are not floats: multiply by e and divide by C exactly instead
        mixed = (hard - hard * smoothing) + smooth * smoothing / classes
        return mixed * upstream[:, None]
    return grad


def soft_grad(smoothing, classes, reduction, count):
    """Engine function: d loss / d x per row, probability targets, with exclusive sums."""
    def grad(B, xs, m, others, finite, is_max, p, w_full, is_top, a, counted):
        e = finite * B.exp(xs - m)
        s_others = B.sum(others * B.exp(xs - m), axis=-1)
        E = 1 + s_others
        rest = B.where(flags(is_max), s_others[:, None], E[:, None] - e)
        q = w_full * target_distribution(p, smoothing, classes)
        total = B.sum(q, axis=-1)
        top_excluded = B.sum((1 - is_top) * q, axis=-1)
        q_rest = B.where(flags(is_top), top_excluded[:, None], total[:, None] - q)
        out = a[:, None] * ((e * q_rest - q * rest) / E[:, None])
        # at a masked class (softmax 0) the gradient is exactly -a q_c: rest / E would be
        # E / E, a ball around 1 that cannot certify a value that is a tie of the format
        out = B.where(flags(finite), out, -(a[:, None] * q))
        return out if reduction != "mean" else out / mean_divisor(B, count, counted, True)
    return grad


def nlp_rows(B, xs, m, others):
    """Engine arithmetic: nlp_c = (m - x_c) + log1p(S') per row (M, C), sums of non-negative
    parts (``Stats``' placeholders at masked classes)."""
    L = B.log1p(B.sum(others * B.exp(xs - m), axis=-1))
    return (m - xs) + L[:, None]


def soft_target_grad(smoothing, reduction, count):
    """Engine function: d loss / d p per row, a (1 - e) w_c nlp_c, the row's upstream a
    divided by M (``count``) for 'mean'; ``w_row`` is 0 at masked classes (decided apart)."""
    def grad(B, xs, m, others, w_row, a):
        out = w_row * nlp_rows(B, xs, m, others) * a[:, None]
        if smoothing:
            out = out - out * smoothing  # (1 - e) is not a float: multiply by e exactly
        return out if reduction != "mean" else out / count
    return grad


def soft_weight_grad(smoothing, classes):
    """Engine function for ``evaluate_row_sums``: a chunk of rows' part of d loss / d w, the
    column sums of a_i p'_ic nlp_ic (C,); ``finite`` is 0 at masked classes (decided apart),
    the mean's division is left to the caller's ``finish``."""
    def contribution(B, xs, m, others, finite, p, a):
        q = target_distribution(p, smoothing, classes) * finite
        return B.sum(q * nlp_rows(B, xs, m, others) * a[:, None], axis=0)
    return contribution


def _column_infinities(signs: np.ndarray) -> np.ndarray:
    """Per column, the sum over rows of sign * (+inf), signs in {-1, 0, 1} (0 adds nothing):
    nan where both signs occur, 0.0 where neither does."""
    positive, negative = np.any(signs > 0, axis=0), np.any(signs < 0, axis=0)
    return np.where(positive & negative, np.nan,
                    np.where(positive, np.inf, np.where(negative, -np.inf, 0.0)))


def _overwrite(result: Evaluated, where, values) -> Evaluated:
    """``result`` with ``values`` (exact infinities, nan, zeros) where ``where`` holds (itself
    where it holds nowhere: a language model's gradient holds millions of elements)."""
    if not np.any(where):
        return result
    return Evaluated(np.where(where, values, result.rounded),
                     np.where(where, values, result.exact).astype(result.exact.dtype,
                                                                   copy=False))


def soft_extra_grads(rows: Rows, st: Stats, a, smoothing, reduction, fmt: Format,
                     with_weight: bool, known=None, weight_known=None) -> dict[str, Evaluated]:
    """Probability targets: d loss / d target (input layout) and, ``with_weight``, d loss / d
    weight (C,), for the per-row upstream ``a`` (before the mean's division), rounded to fmt;
    ``known``, ``weight_known``: their results certified already (``engine.Known``). Masked
    classes and rows without a log-softmax are decided here (the module's docstring)."""
    M, C = rows.x.shape
    masked = (st.finite == 0) & ~st.undefined[:, None]
    w_row = np.broadcast_to(rows.weight, (M, C)) * st.finite
    d_p = evaluate(soft_target_grad(smoothing, reduction, M),
                   [st.xs, st.m, st.others, w_row, a], fmt, independent="rows", known=known)
    if masked.any():
        signs = np.sign(a)[:, None] * np.sign(rows.weight)[None, :] * float(smoothing != 1)
        with np.errstate(**_QUIET):
            d_p = _overwrite(d_p, masked, np.where(signs != 0, signs * np.inf, 0.0))
    d_p = _overwrite(d_p, st.undefined[:, None], np.nan)
    out = {"target": Evaluated(to_input_layout(d_p.rounded, rows.input_shape),
                               to_input_layout(d_p.exact, rows.input_shape))}
    if not with_weight:
        return out

    def finish(B, total):
        return total if reduction != "mean" else total / M

    defined_a = np.where(st.undefined, 0.0, a)
    d_w = evaluate_row_sums(soft_weight_grad(smoothing, C),
                            [st.xs, st.m, st.others, st.finite, rows.target, defined_a], fmt,
                            finish=finish, known=weight_known)
    if masked.any():
        p_signs = np.sign(smoothed_targets(rows.target, smoothing, C))
        with np.errstate(**_QUIET):
            infinities = _column_infinities(np.where(masked, np.sign(a)[:, None] * p_signs,
                                                     0.0))
        d_w = _overwrite(d_w, infinities != 0, infinities)
    out["weight"] = _overwrite(d_w, bool(st.undefined.any()), np.nan)
    return out


def upstream_rows(grad_output, rows: Rows, reduction) -> np.ndarray:
    """Per-row upstream gradient (M,), before the mean's division."""
    g = np.asarray(grad_output, np.float64)
    if reduction == "none":
        return np.broadcast_to(g.reshape(-1), (rows.x.shape[0],)).astype(np.float64)
    return np.full(rows.x.shape[0], float(g))


def loss_grad(name, grad_output, input, target, weight, ignore_index, smoothing, reduction,
              fmt: Format) -> dict[str, Evaluated]:
    """The exact gradients of ``loss`` for the upstream gradient, rounded to fmt: in its input,
    and with probability targets (cross_entropy) also in the target and, when one is given,
    the class weight."""
    rows = rows_of(input, target, weight, ignore_index)
    M, C = rows.x.shape
    smoothing = float(smoothing) if name == "cross_entropy" else 0.0
    if M and divisor_is_zero(rows, reduction) and rows.valid.any():
        raise EvaluationError("the weighted mean divides by a zero sum of weights: its "
                              "gradient is undefined")
    g = upstream_rows(grad_output, rows, reduction)
    a = np.where(rows.valid, g, 0.0)
    soft = name == "cross_entropy" and rows.soft
    if M == 0 or not rows.valid.any():
        zeros = {"input": filled(rows.input_shape, 0.0)}
        if soft:
            zeros["target"] = filled(rows.input_shape, 0.0)
        if soft and weight is not None:
            zeros["weight"] = filled((C,), 0.0)
        return zeros
    if name == "nll_loss":
        w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
        counted, soft = weights_counted(rows), rows.soft

        def d_nll(B, a, w, counted):
            out = -(a * w)
            return out if reduction != "mean" else out / mean_divisor(B, M, counted, soft)

        out = evaluate(d_nll, [a, w_t], fmt, independent="rows", shared=[counted])
        rounded, exact = np.zeros((M, C)), np.zeros((M, C), dtype=LD)
        rounded[np.arange(M), rows.t] = out.rounded
        exact[np.arange(M), rows.t] = out.exact
        return {"input": Evaluated(to_input_layout(rounded, rows.input_shape),
                                   to_input_layout(exact, rows.input_shape))}
    st = stats_of(rows.x)
    columns = np.arange(C)[None, :]
    is_max = (columns == st.k[:, None]).astype(np.float64)
    if rows.soft:
        q = np.abs(rows.weight[None, :] * smoothed_targets(rows.target, smoothing, C))
        top = np.argmax(q, axis=1) if C else np.zeros(M, dtype=np.int64)
        is_top = (columns == top[:, None]).astype(np.float64)
        w_full = np.broadcast_to(rows.weight, (M, C))
        args = [st.xs, st.m, st.others, st.finite, is_max, rows.target, w_full, is_top, a]
        function = soft_grad(smoothing, C, reduction, M)
    else:
        is_t = (columns == rows.t[:, None]).astype(np.float64)
        t_is_max = (rows.t == st.k).astype(np.float64)
        x_t = st.xs[np.arange(M), rows.t]
        t_finite = st.finite[np.arange(M), rows.t]
        w_t = rows.weight[rows.t]
        w_full = np.broadcast_to(rows.weight, (M, C))
        args = [st.xs, st.m, st.others, st.finite, is_t, t_is_max, x_t, t_finite, w_t, w_full,
                a]
        function = ce_grad(smoothing, C, reduction, M)
    known = target_known = weight_known = None
    if classification_fast.gradient_applies(rows) and rows.soft:
        known, target_known, weight_known = classification_fast.soft_gradients(
            rows, st, a, reduction, smoothing, weight_gradient=weight is not None, fmt=fmt)
    elif classification_fast.gradient_applies(rows):
        known = classification_fast.gradient(rows, st, a, reduction, smoothing, fmt)
    out = evaluate(function, args, fmt, independent="rows",
                   shared=[weights_counted(rows)] + ([] if rows.soft else [rows.weight]),
                   known=known)
    undefined = st.undefined & rows.valid
    out.rounded[undefined] = np.nan
    out.exact[undefined] = np.nan
    grads = {"input": Evaluated(to_input_layout(out.rounded, rows.input_shape),
                                to_input_layout(out.exact, rows.input_shape))}
    if soft:
        grads.update(soft_extra_grads(rows, st, a, smoothing, reduction, fmt,
                                      weight is not None, target_known, weight_known))
    return grads
