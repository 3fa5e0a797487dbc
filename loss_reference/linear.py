"""Exact reference for linear_cross_entropy: cross_entropy of the logits of a linear layer.

torch 2.13 defines ``linear_cross_entropy(x, W, target, linear_bias=b, ...)`` as
``cross_entropy(linear(x, W, b), target, ...)``: logits z = x W^T + b, one row of C classes per
token (x (N, D) or (D,), W (C, D), b (C,)). The logits are never rounded here: each chunk of
rows computes them in the engine (``B.matmul``, whose error bound covers any order of the D
products), and cross_entropy's own row functions (``classification.ce_rows`` and friends) take
them from there, so every result is the exact value of the function of the very inputs the
candidate saw, rounded once. The row max m and its class k are decisions taken on the computed
logits (any choice keeps the formula exact; the largest keeps its sums free of cancellation).

Gradients, with G = d loss / d z (cross_entropy's gradient in its logits, per row):
d loss / d x = G W (rows of x), d loss / d W = G^T x and d loss / d b = sum over rows of G
(sums over the whole batch, computed as one product G^T [x, 1] per chunk of rows, the chunks
added in ``evaluate_row_sums``).

With probability targets the loss is also differentiable in the target and the class weight:
cross_entropy's d loss / d p_ic = a_i (1 - e) w_c nlp_ic per row and d loss / d w_c =
sum_i a_i p'_ic nlp_ic over the batch (``classification.soft_target_grad`` and
``soft_weight_grad`` on the chunk's logits; the latter's chunks added in ``evaluate_row_sums``).

Inputs must be finite (a non-finite input or weight raises EvaluationError: its logits would be
nan or an infinity whose sign depends on the order of the sum). Only the (C, D) weight of
torch's 2-D loss is covered (not the (C, d1, ..., D) weight of its K-dimensional form).
"""

from __future__ import annotations

import numpy as np

from . import classification as ce
from .balls import Ball
from .engine import EvaluationError, Evaluated, evaluate, evaluate_row_sums, evaluate_total, filled
from .formats import Format

LOSSES = ("linear_cross_entropy",)
DEFAULT_IGNORE_INDEX = ce.DEFAULT_IGNORE_INDEX  # what torch maps ignore_index=None to
# logits per chunk of rows: their balls and temporaries stay ~300 MB, and a chunk holds enough
# rows (16 at a vocabulary of 128k) for its products to run at BLAS speed
ROW_CHUNK_LOGITS = 1 << 21


class Call:
    """A call laid out as rows: tokens x (M, D), the layer (W, b), targets and what counts."""

    def __init__(self, input, linear_weight, target, linear_bias, weight, ignore_index):
        x = np.asarray(input, np.float64)
        W = np.asarray(linear_weight, np.float64)
        b = np.zeros(W.shape[0]) if linear_bias is None else np.asarray(linear_bias, np.float64)
        arrays = {"input": x, "linear_weight": W, "linear_bias": b}
        if weight is not None:
            arrays["weight"] = np.asarray(weight, np.float64)
        bad = [name for name, a in arrays.items() if not np.isfinite(a).all()]
        if bad:
            raise EvaluationError(f"linear_cross_entropy's reference takes finite inputs only; "
                                  f"{', '.join(bad)} holds inf or nan")
        self.unbatched = x.ndim == 1
        self.x = x.reshape(1, -1) if self.unbatched else x
        self.W, self.b = W, b
        self.input_shape, self.classes = x.shape, W.shape[0]
        ignore = DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index
        # cross_entropy's own row layout, on placeholder logits: targets, weights, masks.
        placeholder = np.zeros((self.x.shape[0], self.classes))
        self.rows = ce.rows_of(placeholder[0] if self.unbatched else placeholder, target,
                               weight, ignore)

    def logits(self) -> np.ndarray:
        """z rounded to float64 (for decisions the exact value does not hinge on)."""
        return self.x @ self.W.T + self.b


def _ints(values) -> np.ndarray:
    """Exact integers carried as an engine argument (balls or arb objects) back as int64."""
    if isinstance(values, Ball):
        return values.mid.astype(np.int64)
    return np.array([int(float(v.mid())) for v in np.asarray(values).reshape(-1)],
                    dtype=np.int64).reshape(np.shape(values))


def _plain(values) -> np.ndarray:
    """Exact numbers carried as an engine argument back as float64 (they are inputs)."""
    if isinstance(values, Ball):
        return np.asarray(values.mid, np.float64)
    flat = [float(v.mid()) for v in np.asarray(values).reshape(-1)]
    return np.array(flat, np.float64).reshape(np.shape(values))


def _logit_parts(B, x, Wt, b, t):
    """The chunk's logits z (a ball array), its max m (M, 1) and class k, the mask of the other
    classes, and (for index targets t) z at the target and the targets as integers."""
    z = B.matmul(x, Wt) + b
    rows, k = np.arange(z.shape[0]), B.argmax(z, axis=-1)
    m = B.reshape(z[rows, k], (z.shape[0], 1))
    others = B.asarray((np.arange(z.shape[1])[None, :] != k[:, None]).astype(np.float64))
    if t is None:  # probability targets
        return z, m, k, others, None, None
    targets = _ints(t)
    return z, m, k, others, z[rows, targets], targets


def _index_loss_rows(smoothing, classes):
    """Engine function: per-row loss with index targets (ignored rows have w_t = 0)."""
    rows_loss = ce.ce_rows(smoothing, classes)

    def loss_rows(B, x, t, w_t, valid, Wt, b, weight, *_):
        z, m, _, others, z_t, _ = _logit_parts(B, x, Wt, b, t)
        w_row = B.asarray(_plain(valid)[:, None] * _plain(weight)[None, :])
        return rows_loss(B, z, m, others, z_t, w_t, w_row)
    return loss_rows


def _soft_loss_rows(smoothing, classes):
    """Engine function: per-row loss with probability targets."""
    rows_loss = ce.soft_rows(smoothing, classes)

    def loss_rows(B, x, p, Wt, b, weight, *_):
        z, m, _, others, _, _ = _logit_parts(B, x, Wt, b, None)
        w_row = B.asarray(np.broadcast_to(_plain(weight), z.shape))
        return rows_loss(B, z, m, others, p, w_row)
    return loss_rows


def _row_function(call: Call, smoothing):
    """(engine function, its row arguments, its shared arguments) for the loss per row."""
    rows = call.rows
    shared = [call.W.T, call.b, rows.weight]
    if rows.soft:
        return _soft_loss_rows(smoothing, call.classes), [call.x, rows.target], shared
    w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
    return (_index_loss_rows(smoothing, call.classes),
            [call.x, rows.t.astype(np.float64), w_t, rows.valid.astype(np.float64)], shared)


def _chunking(call: Call) -> dict:
    """Rows per chunk: ROW_CHUNK_LOGITS logits, whatever the width of a token."""
    return {"width": max(call.classes, 1), "chunk_elements": ROW_CHUNK_LOGITS}


def _zero_divisor_mean(call: Call, smoothing) -> float:
    """A 'mean' that divides by zero: cross_entropy's IEEE quotient (its signs from float64
    logits, enough to tell 0 from not)."""
    rows = call.rows
    rows.x = call.logits()
    return ce.zero_divisor_value("cross_entropy", rows, ce.stats_of(rows.x), smoothing)


def loss(input, linear_weight, target, linear_bias, weight, ignore_index, smoothing, reduction,
         fmt: Format) -> Evaluated:
    """The exact loss, reduced, rounded once to fmt."""
    call = Call(input, linear_weight, target, linear_bias, weight, ignore_index)
    rows, smoothing = call.rows, float(smoothing)
    M = call.x.shape[0]
    batch_shape = rows.batch_shape
    if reduction == "none" and M == 0:
        return filled(batch_shape, 0.0)
    if reduction != "none" and (M == 0 or ce.divisor_is_zero(rows, reduction)):
        return filled((), _zero_divisor_mean(call, smoothing) if reduction == "mean" else 0.0)
    function, row_args, shared = _row_function(call, smoothing)
    if reduction == "none":
        out = evaluate(function, row_args, fmt, independent="rows", shared=shared,
                       **_chunking(call))
        return Evaluated(out.rounded.reshape(batch_shape), out.exact.reshape(batch_shape))
    soft = rows.soft

    def finish(B, total, *shared_args):
        if reduction == "sum":
            return total
        return total / ce.mean_divisor(B, M, shared_args[-1], soft)

    return evaluate_total(function, row_args, fmt, finish=finish,
                          shared=shared + [ce.weights_counted(rows)], **_chunking(call))


# --- gradients -----------------------------------------------------------------------------------

def _logits_grad(call: Call, smoothing, reduction):
    """Engine function G(B, x, *row args, *shared): d loss / d z for a chunk of rows, the
    upstream gradient (before the mean's division) included; and its row arguments."""
    rows, C, M = call.rows, call.classes, call.x.shape[0]
    g = ce.upstream_rows(call.grad_output, rows, reduction)
    a = np.where(rows.valid, g, 0.0)
    columns = np.arange(C)[None, :]
    weight = rows.weight
    if rows.soft:
        q = np.abs(weight[None, :] * ce.smoothed_targets(rows.target, smoothing, C))
        top = np.argmax(q, axis=1) if C else np.zeros(M, dtype=np.int64)
        soft_grad = ce.soft_grad(smoothing, C, reduction, M)

        def grad(B, x, p, is_top, a, Wt, b, w, counted):
            z, m, k, others, _, _ = _logit_parts(B, x, Wt, b, None)
            is_max = B.asarray((columns == k[:, None]).astype(np.float64))
            finite = B.asarray(np.ones(z.shape))
            w_full = B.asarray(np.broadcast_to(_plain(w), z.shape))
            return soft_grad(B, z, m, others, finite, is_max, p, w_full, is_top, a, counted)

        is_top = (columns == top[:, None]).astype(np.float64)
        return grad, [rows.target, is_top, a]
    ce_grad = ce.ce_grad(smoothing, C, reduction, M)

    def grad(B, x, t, w_t, a, Wt, b, w, counted):
        z, m, k, others, z_t, targets = _logit_parts(B, x, Wt, b, t)
        is_t = B.asarray((columns == targets[:, None]).astype(np.float64))
        t_is_max = B.asarray((targets == k).astype(np.float64))
        finite = B.asarray(np.ones(z.shape))
        ones = B.asarray(np.ones(len(targets)))
        w_full = B.asarray(np.broadcast_to(_plain(w), z.shape))
        return ce_grad(B, z, m, others, finite, is_t, t_is_max, z_t, ones, w_t, w_full, a,
                       counted, w)

    return grad, [rows.t.astype(np.float64), weight[rows.t], a]


def _soft_grads(call: Call, smoothing, reduction, fmt: Format, with_weight: bool) -> dict:
    """Probability targets: d loss / d target (the target's shape) and, ``with_weight``,
    d loss / d weight (C,), each rounded once to fmt."""
    rows, C, M = call.rows, call.classes, call.x.shape[0]
    a = ce.upstream_rows(call.grad_output, rows, reduction)
    target_grad = ce.soft_target_grad(smoothing, reduction, M)

    def target_rows(B, x, a, Wt, b, w):
        z, m, _, others, _, _ = _logit_parts(B, x, Wt, b, None)
        w_row = B.asarray(np.broadcast_to(_plain(w), z.shape))
        return target_grad(B, z, m, others, w_row, a)

    d_p = evaluate(target_rows, [call.x, a], fmt, independent="rows",
                   shared=[call.W.T, call.b, rows.weight], **_chunking(call))
    shape = call.target_shape
    out = {"target": Evaluated(d_p.rounded.reshape(shape), d_p.exact.reshape(shape))}
    if not with_weight:
        return out
    contribution = ce.soft_weight_grad(smoothing, C)

    def weight_sums(B, x, p, a, Wt, b):
        z, m, _, others, _, _ = _logit_parts(B, x, Wt, b, None)
        return contribution(B, z, m, others, B.asarray(np.ones(z.shape)), p, a)

    def finish(B, total, *_):
        return total if reduction != "mean" else total / M

    out["weight"] = evaluate_row_sums(weight_sums, [call.x, rows.target, a], fmt, finish=finish,
                                      shared=[call.W.T, call.b], **_chunking(call))
    return out


def loss_grad(grad_output, input, linear_weight, target, linear_bias, weight, ignore_index,
              smoothing, reduction, fmt: Format) -> dict[str, Evaluated]:
    """The exact gradients in input, linear_weight and linear_bias (the last only when given),
    and with probability targets in the target and the class weight (when given), for the
    upstream gradient, each rounded once to fmt."""
    call = Call(input, linear_weight, target, linear_bias, weight, ignore_index)
    call.grad_output = grad_output
    call.target_shape = np.shape(target)
    rows, smoothing = call.rows, float(smoothing)
    M, D = call.x.shape
    names = ["input", "linear_weight"] + ([] if linear_bias is None else ["linear_bias"])
    if rows.soft:
        names += ["target"] + ([] if weight is None else ["weight"])
    if M and ce.divisor_is_zero(rows, reduction) and rows.valid.any():
        raise EvaluationError("the weighted mean divides by a zero sum of weights: its "
                              "gradient is undefined")
    if M == 0 or not rows.valid.any():
        shapes = {"input": call.input_shape, "linear_weight": call.W.shape,
                  "linear_bias": call.b.shape, "target": call.target_shape,
                  "weight": (call.classes,)}
        return {name: filled(shapes[name], 0.0) for name in names}
    grad, row_args = _logits_grad(call, smoothing, reduction)
    shared = [call.W.T, call.b, rows.weight, ce.weights_counted(rows)]

    def input_rows(B, x, *rest):
        return B.matmul(grad(B, x, *rest), B.transpose(rest[-4]))  # G W, W from shared W^T

    d_input = evaluate(input_rows, [call.x] + row_args, fmt, independent="rows",
                       shared=shared, **_chunking(call))
    out = {"input": Evaluated(d_input.rounded.reshape(call.input_shape),
                              d_input.exact.reshape(call.input_shape))}

    # G^T [x, 1]: the weight's gradient in its first D columns, the bias's in the last.
    x_one = np.concatenate([call.x, np.ones((M, 1))], axis=1)

    def layer_sums(B, x1, *rest):
        G = grad(B, x1[:, :D], *rest)
        return B.matmul(B.transpose(G), x1)

    sums = evaluate_row_sums(layer_sums, [x_one] + row_args, fmt, shared=shared,
                             **_chunking(call))
    out["linear_weight"] = Evaluated(sums.rounded[:, :D], sums.exact[:, :D])
    if linear_bias is not None:
        out["linear_bias"] = Evaluated(sums.rounded[:, D], sums.exact[:, D])
    if rows.soft:
        out.update(_soft_grads(call, smoothing, reduction, fmt, weight is not None))
    return out

