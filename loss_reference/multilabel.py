"""Exact references for the multi-label family, written from the mathematical definitions.

Every function takes numpy arrays holding the exact values the candidate received (float64 or
int64), the options, and the target Format, and returns ``Evaluated`` results (certified
roundings plus long double estimates): the loss, or a dict of gradients by argument name.
"""

from __future__ import annotations

import numpy as np

from . import elementwise_fast as elementwise
from . import logistic_fast as logistic
from . import multilabel_fast as fast
from .decisions import sign_of_sum
from .engine import (Evaluated, Known, evaluate, evaluate_total, filled, parallel_map,
                     row_chunks)
from .formats import Format


def _reduced(class_sums, rows, reduction, classes, batch_size, batch_shape,
             fmt: Format, known: Known | None = None) -> Evaluated:
    """Per-sample class sums ``class_sums(B, *rows)`` (rows of the 2-D arguments) -> the
    reduced loss, of shape ``batch_shape`` for 'none' (() for unbatched input); ``known``: what
    a fast tier certified (rows for 'none', the total otherwise).

    The one division comes last, so an exact total stays exact in arb (a tie of the target
    format can then be certified).
    """
    if reduction == "none":
        out = evaluate(lambda B, *a: class_sums(B, *a) / classes, rows, fmt, independent="rows",
                       known=known)
        return Evaluated(out.rounded.reshape(batch_shape), out.exact.reshape(batch_shape))
    divisor = classes if reduction == "sum" else classes * batch_size
    return evaluate_total(class_sums, rows, fmt, finish=lambda B, total: total / divisor,
                          known=known)


def _upstream(grad_output, reduction, batch_shape):
    """Per-sample upstream gradient g_n (broadcastable to the batch) and the exact divisor."""
    grad_output = np.asarray(grad_output, dtype=np.float64)
    batch_size = int(np.prod(batch_shape))
    if reduction == "none":
        return grad_output.reshape(batch_shape), 1
    # An empty batch has no per-sample terms: max(N, 1) leaves every (empty) sum at 0.
    return np.full(batch_shape, float(grad_output)), (max(batch_size, 1) if reduction == "mean"
                                                      else 1)


# --- multilabel_soft_margin_loss ---------------------------------------------------------------

def _soft_margin_terms(B, x, y):
    """softplus(x) - y*x, written without cancellation for 0 <= y <= 1."""
    return (1 - y) * B.softplus(x) + y * B.softplus(-x)


def multilabel_soft_margin_loss(input, target, weight, reduction, fmt: Format) -> Evaluated:
    """Exact mean over classes of w_c (softplus(x) - y x), then the reduction, rounded to fmt."""
    classes = input.shape[-1]
    batch_size = input.shape[0] if input.ndim == 2 else 1
    weight = np.ones(classes) if weight is None else weight
    if reduction == "mean" and batch_size == 0:
        return filled((), np.nan)

    def class_sums(B, x, y, w):
        return B.sum(w * _soft_margin_terms(B, x, y), axis=-1)

    rows = [np.atleast_2d(a) for a in (input, target, np.broadcast_to(weight, input.shape))]
    known = None
    if logistic.applies(input, fmt):
        known = (logistic.row_means(*rows) if reduction == "none" else logistic.total(
            *rows[:2], 1.0, rows[2], classes * (batch_size if reduction == "mean" else 1)))
    return _reduced(class_sums, rows, reduction, classes, batch_size, input.shape[:-1], fmt,
                    known)


def multilabel_soft_margin_loss_grad(grad_output, input, target, weight, reduction,
                                     fmt: Format) -> dict[str, Evaluated]:
    """Exact gradients w.r.t. input, target and (when given) weight, rounded to fmt."""
    classes = input.shape[-1]
    upstream, divisor = _upstream(grad_output, reduction, input.shape[:-1])
    g = upstream[..., None]
    w = np.ones(classes) if weight is None else weight
    scale = classes * divisor

    def d_input(B, x, y, w, g):
        # sigmoid(x) - y == (1 - y) sigmoid(x) - y sigmoid(-x): no cancellation for 0 <= y <= 1
        return g * w * ((1 - y) * B.sigmoid(x) - y * B.sigmoid(-x)) / scale

    def d_target(B, x, w, g):
        return -(g * w * x) / scale

    known = (logistic.elements(input, target, 1.0, w, g, scale, logistic.SLOPE)
             if logistic.applies(input, fmt) else None)
    grads = {
        "input": evaluate(d_input, [input, target, w, g], fmt, independent="elements",
                          known=known),
        "target": evaluate(d_target, [input, w, g], fmt, independent="elements",
                           known=logistic.elements(input, target, 1.0, w, g, scale,
                                                   logistic.TARGET_SLOPE)
                           if logistic.applies(input, fmt) else None),
    }
    if weight is not None:
        def d_weight(B, x_t, y_t, g_t):  # classes along the leading axis
            return B.sum(g_t * _soft_margin_terms(B, x_t, y_t), axis=-1) / scale

        columns = [np.atleast_2d(a).T for a in np.broadcast_arrays(input, target, g)]
        known = (logistic.column_means(input, target, g, scale)
                 if logistic.applies(input, fmt) else None)
        grads["weight"] = evaluate(d_weight, columns, fmt, independent="rows", known=known)
    return grads


# --- multilabel_margin_loss ----------------------------------------------------------------------

def label_lists(target):
    """(labels, valid, is_target): target rows cut at the first -1, padded to the longest list.

    labels[n, k] is the k-th listed class of sample n (0 where invalid), valid[n, k] says whether
    it is listed, is_target[n, c] whether class c is listed at all.
    """
    target = np.atleast_2d(target)
    before_terminator = np.cumsum(target == -1, axis=1) == 0
    longest = int(before_terminator.sum(axis=1).max(initial=0))
    labels = np.where(before_terminator, target, 0)[:, :longest]
    valid = before_terminator[:, :longest]
    is_target = np.zeros(target.shape, dtype=bool)
    rows = np.broadcast_to(np.arange(target.shape[0])[:, None], labels.shape)
    is_target[rows[valid], labels[valid]] = True
    return labels, valid, is_target


def counted_pairs(input, target):
    """x at each listed label (N, K), x per class (N, C) and the mask of counted pairs (N, K, C)."""
    x = np.atleast_2d(input)
    labels, valid, is_target = label_lists(target)
    x_label = np.take_along_axis(x, labels, axis=1)
    counted = valid[:, :, None] & ~is_target[:, None, :]
    return x, x_label, counted


def multilabel_margin_loss(input, target, reduction, fmt: Format) -> Evaluated:
    """Exact sum over listed labels j and unlisted classes i of max(0, 1 - x_j + x_i), / C."""
    classes = input.shape[-1]
    batch_size = input.shape[0] if input.ndim == 2 else 1
    if reduction == "mean" and batch_size == 0:
        return filled((), np.nan)  # the mean of no samples, as for every loss (torch.mean too)
    x, x_label, counted = counted_pairs(input, target)
    mask = counted.astype(np.float64)

    def class_sums(B, x, x_label, mask):
        hinge = mask * B.relu(1 - x_label[:, :, None] + x[:, None, :])
        rows, pairs = hinge.shape[0], hinge.shape[1] * hinge.shape[2]
        return B.sum(B.reshape(hinge, (rows, pairs)), axis=-1)

    labels = label_lists(target)[0]
    return _reduced(class_sums, [x, x_label, mask], reduction, classes, batch_size,
                    input.shape[:-1], fmt,
                    fast.value(x, x_label, counted, reduction, classes, fmt, labels))


def hinge_active(x_label, x):
    """Exactly whether 1 - x_label + x > 0, elementwise (broadcasting), for float64 inputs."""
    return sign_of_sum(1.0, -np.asarray(x_label, np.float64), np.asarray(x, np.float64)) > 0


def exactly_at_kink(x_label, x):
    """Exactly whether 1 - x_label + x == 0, elementwise (broadcasting), for float64 inputs."""
    return sign_of_sum(1.0, -np.asarray(x_label, np.float64), np.asarray(x, np.float64)) == 0


def _active_pairs(x, x_label, counted) -> np.ndarray:
    """(N, K, C) which counted pairs' hinges are active, decided exactly, by chunks of rows on
    the reference's threads (the pairs are labels x classes per row: millions)."""
    pairs = x_label.shape[1] * x.shape[1]
    chunks = row_chunks(x.shape[0], pairs, chunk_elements=fast.PAIRS_PER_CHUNK)
    parts = parallel_map(lambda rows: counted[rows] & hinge_active(
        x_label[rows][:, :, None], x[rows][:, None, :]), chunks)
    return np.concatenate(parts) if parts else counted


def multilabel_margin_loss_grad(grad_output, input, target, reduction,
                                fmt: Format) -> dict[str, Evaluated]:
    """Exact gradient w.r.t. input, with torch's convention that a hinge at exactly 0 is off."""
    classes = input.shape[-1]
    upstream, divisor = _upstream(grad_output, reduction, input.shape[:-1])
    x, x_label, counted = counted_pairs(input, target)
    labels, _, _ = label_lists(target)
    fast64 = elementwise.applies(x, fmt)
    sums = fast.float64_rows(x, labels, counted) if fast64 and x.shape[0] else None
    if sums is not None and np.isfinite(sums[2]).all():
        count = sums[3]  # the same exact decisions, from the double-double hinges
    else:
        active = _active_pairs(x, x_label, counted)
        count = active.sum(axis=1).astype(np.float64)  # +1 per active pair at its class
        np.add.at(count, (np.arange(x.shape[0])[:, None], labels), -active.sum(axis=2))
    count = count.reshape(input.shape)
    g = np.asarray(upstream, dtype=np.float64)[..., None]

    def d_input(B, g, count):
        return g * count / (classes * divisor)

    known = (elementwise.scaled_differences(count, 0.0, g, 1.0, classes * divisor)
             if fast64 else None)
    return {"input": evaluate(d_input, [g, count], fmt, independent="elements", known=known)}


# --- multi_hot -----------------------------------------------------------------------------------

def multi_hot(labels, num_classes: int, padding_value: int = -1) -> np.ndarray:
    """Exact multi-hot indicators (N, num_classes) from padded label rows or lists of lists.

    Raises ValueError for a label outside [0, num_classes) that is not padding.
    """
    rows = [list(row) for row in labels] if not isinstance(labels, np.ndarray) else labels.tolist()
    out = np.zeros((len(rows), num_classes))
    for n, row in enumerate(rows):
        for label in row:
            if label == padding_value:
                continue
            if not 0 <= label < num_classes:
                raise ValueError(f"label {label} in row {n} is outside [0, {num_classes})")
            out[n, label] = 1.0
    return out
