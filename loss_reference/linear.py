"""Exact reference for linear_cross_entropy: cross_entropy of the logits of a linear layer.

torch 2.13 defines ``linear_cross_entropy(x, W, target, linear_bias=b, ...)`` as
``cross_entropy(linear(x, W, b), target, ...)``: logits z = x W^T + b, one row of C classes per
token (x (N, D) or (D,), W (C, D), b (C,)). Its K-dimensional form takes W (C, d1, ..., dK, D)
and b (C, d1, ..., dK) with batched tokens x (N, D) only: z[n, c, k] = x_n . W[c, k] + b[c, k]
(k a position of d1 x ... x dK), cross_entropy's K-dimensional input (N, C, d1, ..., dK). Both
forms are one here: the 2-D weight is the K-dimensional one with P = 1 position, and the rows
of cross_entropy are the (token, position) pairs (n, k), P of them per token.

The logits are never rounded here: each chunk of tokens computes all of theirs at once in the
engine, x (n, D) times the weight laid out position-major (``Call.W_rows``: row k C + c is
W[c, k]) plus the bias likewise (``B.matmul``: inputs in float32 or narrower come out exact
from a few float64 BLAS products, ``split_product``; otherwise its error bound covers any order
of the D products), and cross_entropy's own row functions (``classification.ce_rows`` and
friends) take them from there as (n P, C) rows, so every result is the exact value of the
function of the very inputs the candidate saw, rounded once. The row max m and its class k are
decisions taken on the computed logits (any choice keeps the formula exact; the largest keeps
its sums free of cancellation).

Gradients, with G = d loss / d z (cross_entropy's gradient in its logits, per row), laid out
per token as G_flat (n, P C) in the same position-major order as W_rows (P C, D):
d loss / d x = G_flat W_rows (one sum over the P C logits of each token), d loss / d W_rows =
G_flat^T x and d loss / d b_rows = the column sums of G_flat (sums over the whole batch,
computed as one product G_flat^T [x, 1] per chunk of tokens, the chunks added in
``evaluate_row_sums``); each is rounded once and only then put back in the weight's own
layout (a permutation of exact results).

With probability targets the loss is also differentiable in the target and the class weight:
cross_entropy's d loss / d p_ic = a_i (1 - e) w_c nlp_ic per row and d loss / d w_c =
sum_i a_i p'_ic nlp_ic over every row (``classification.soft_target_grad`` and
``soft_weight_grad`` on the chunk's logits; the latter's chunks added in ``evaluate_row_sums``).

Inputs must be finite (a non-finite input or weight raises EvaluationError: its logits would be
nan or an infinity whose sign depends on the order of the sum).
"""

from __future__ import annotations

import math

import numpy as np

from . import classification as ce
from . import linear_fast as fast
from . import linear_float64 as double_double_tier
from .balls import Ball
from .engine import (EvaluationError, Evaluated, Known, blas_on_one_thread, evaluate,
                     evaluate_row_sums, evaluate_total, filled)
from .formats import FORMATS, Format
from .split_product import reusing_splits

LOSSES = ("linear_cross_entropy",)
DEFAULT_IGNORE_INDEX = ce.DEFAULT_IGNORE_INDEX  # what torch maps ignore_index=None to
# logits per chunk of tokens (P C each): their balls and temporaries stay ~300 MB, and a chunk
# holds enough tokens (16 at a vocabulary of 128k) for its products to run at BLAS speed
ROW_CHUNK_LOGITS = 1 << 21


class Call:
    """A call laid out as rows: tokens x (N, D), the layer position-major (W_rows (P C, D),
    b_rows (P C,)), and cross_entropy's (N P, C) rows of targets and what counts."""

    def __init__(self, input, linear_weight, target, linear_bias, weight, ignore_index):
        x = np.asarray(input, np.float64)
        W = np.asarray(linear_weight, np.float64)
        b = (np.zeros(W.shape[:-1]) if linear_bias is None
             else np.asarray(linear_bias, np.float64))
        arrays = {"input": x, "linear_weight": W, "linear_bias": b}
        if weight is not None:
            arrays["weight"] = np.asarray(weight, np.float64)
        bad = [name for name, a in arrays.items() if not np.isfinite(a).all()]
        if bad:
            raise EvaluationError(f"linear_cross_entropy's reference takes finite inputs only; "
                                  f"{', '.join(bad)} holds inf or nan")
        self.unbatched = x.ndim == 1
        self.spatial = W.shape[1:-1]  # (d1, ..., dK); () for the 2-D weight
        if self.unbatched and self.spatial:
            raise ValueError(f"a K-dimensional linear_weight {W.shape} requires batched input")
        self.x = x.reshape(1, -1) if self.unbatched else x
        self.W, self.b = W, b
        self.input_shape, self.classes = x.shape, W.shape[0]
        self.positions = int(np.prod(self.spatial, dtype=np.int64))
        C, P, D = self.classes, self.positions, W.shape[-1]
        self.W_rows = W.reshape(C, P, D).transpose(1, 0, 2).reshape(P * C, D)
        self.b_rows = b.reshape(C, P).T.reshape(P * C)
        ignore = DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index
        # cross_entropy's own row layout, on placeholder logits: targets, weights, masks (a
        # read-only view of one zero: an array of zeros was 16 MB at 512 x 4096, 1.6 ms)
        placeholder = np.broadcast_to(
            0.0, (C,) if self.unbatched else (self.x.shape[0], C) + self.spatial)
        self.rows = ce.rows_of(placeholder, target, weight, ignore)
        self.row_count = self.rows.x.shape[0]  # N P

    def per_token(self, values: np.ndarray) -> np.ndarray:
        """Row values (N P, ...) grouped by token: (N, P, ...)."""
        return values.reshape((self.x.shape[0], self.positions) + values.shape[1:])

    def weight_layout(self, values: np.ndarray) -> np.ndarray:
        """Position-major (P C, ...) values (a gradient of W_rows or b_rows) in the layout of
        the weight (C, d1, ..., dK, ...) or the bias (C, d1, ..., dK)."""
        C, P = self.classes, self.positions
        tail = values.shape[1:]
        grouped = np.swapaxes(values.reshape((P, C) + tail), 0, 1)
        return grouped.reshape((C,) + self.spatial + tail)


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


def _as_rows(B, values, tokens):
    """Engine arguments per token (n, P, ...) as per row (n P, ...)."""
    shape = values.shape
    return B.reshape(values, (tokens * shape[1],) + tuple(shape[2:]))


def _logit_parts(B, x, Wt, b, t, classes):
    """The chunk's logits z, each row shifted by its max ((n P, C) rows: z - z_k, exactly
    0 at k), that max's class k, the max m of the shifted rows (0, (n P, 1)), the mask of the
    other classes, and (for index targets t, per token) z at the target and the targets as
    integers (per row). Cross entropy depends only on differences of logits (z_c - m,
    m - z_t), so the shift changes no value; the backend subtracts before it rounds
    (``affine_minus_max``), so logits of 1e30 keep small differences exact."""
    z, k = B.affine_minus_max(x, Wt, b, classes)
    rows = np.arange(z.shape[0])
    m = B.asarray(np.zeros((z.shape[0], 1)))
    others = B.asarray((np.arange(z.shape[1])[None, :] != k[:, None]).astype(np.float64))
    if t is None:  # probability targets
        return z, m, k, others, None, None
    targets = _ints(t).reshape(-1)
    return z, m, k, others, z[rows, targets], targets


def _index_loss_rows(smoothing, classes):
    """Engine function: per-token loss (n, P) with index targets (ignored rows have
    w_t = 0)."""
    rows_loss = ce.ce_rows(smoothing, classes)

    def loss_rows(B, x, t, w_t, valid, Wt, b, weight, *_):
        n, P = t.shape
        z, m, _, others, z_t, _ = _logit_parts(B, x, Wt, b, t, classes)
        w_row = B.asarray(_plain(valid).reshape(-1)[:, None] * _plain(weight)[None, :])
        out = rows_loss(B, z, m, others, z_t, _as_rows(B, w_t, n), w_row)
        return B.reshape(out, (n, P))
    return loss_rows


def _soft_loss_rows(smoothing, classes):
    """Engine function: per-token loss (n, P) with probability targets."""
    rows_loss = ce.soft_rows(smoothing, classes)

    def loss_rows(B, x, p, Wt, b, weight, *_):
        n, P = p.shape[:2]
        z, m, _, others, _, _ = _logit_parts(B, x, Wt, b, None, classes)
        w_row = B.asarray(np.broadcast_to(_plain(weight), z.shape))
        return B.reshape(rows_loss(B, z, m, others, _as_rows(B, p, n), w_row), (n, P))
    return loss_rows


def _row_function(call: Call, smoothing):
    """(engine function, its per-token arguments, its shared arguments) for the loss."""
    rows = call.rows
    shared = [call.W_rows.T, call.b_rows, rows.weight]
    if rows.soft:
        return (_soft_loss_rows(smoothing, call.classes), [call.x, call.per_token(rows.target)],
                shared)
    w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
    per_row = [rows.t.astype(np.float64), w_t, rows.valid.astype(np.float64)]
    return (_index_loss_rows(smoothing, call.classes),
            [call.x] + [call.per_token(a) for a in per_row], shared)


def _chunking(call: Call) -> dict:
    """Tokens per chunk: ROW_CHUNK_LOGITS logits, whatever the width of a token (P C)."""
    return {"width": max(call.classes * call.positions, 1), "chunk_elements": ROW_CHUNK_LOGITS}


def _zero_divisor_mean(call: Call, args: tuple, smoothing) -> float:
    """A 'mean' that divides by zero: cross_entropy's IEEE quotients of the exact numerators
    (``ce.zero_divisor_numerators``), here the certified 'sum' in float64 at smoothing 0 (A)
    and 1 (B over C); the logits are finite products, so neither has an infinite part."""
    if not call.rows.valid.any():
        return math.nan
    f64 = FORMATS["float64"]
    numerators = tuple(float(loss(*args, e, "sum", f64).rounded) if e is not None else None
                       for e in (0.0, 1.0 if smoothing else None))
    return ce.quotients_by_zero(numerators, smoothing, call.classes)


@reusing_splits()  # the weight is split once, not once per chunk of tokens
@blas_on_one_thread()  # the products are split over the reference's threads
def loss(input, linear_weight, target, linear_bias, weight, ignore_index, smoothing, reduction,
         fmt: Format) -> Evaluated:
    """The exact loss, reduced, rounded once to fmt."""
    call = Call(input, linear_weight, target, linear_bias, weight, ignore_index)
    rows, smoothing = call.rows, float(smoothing)
    M = call.row_count
    batch_shape = rows.batch_shape
    if reduction == "none" and M == 0:
        return filled(batch_shape, 0.0)
    if reduction != "none" and (M == 0 or ce.divisor_is_zero(rows, reduction)):
        args = (input, linear_weight, target, linear_bias, weight, ignore_index)
        return filled((), _zero_divisor_mean(call, args, smoothing) if reduction == "mean"
                       else 0.0)
    function, token_args, shared = _row_function(call, smoothing)
    known = None
    if fast.applies(call, smoothing, fmt):
        known = fast.loss(call, reduction, fmt, ROW_CHUNK_LOGITS, smoothing)
        if reduction == "none":  # per row, as the engine's (N, P = 1)
            known = Known(known.rounded.reshape(M, 1), known.exact.reshape(M, 1), known.ok)
    elif double_double_tier.applies(call, fmt):
        known = double_double_tier.loss(call, reduction, smoothing)
    if reduction == "none":
        out = evaluate(function, token_args, fmt, independent="rows", shared=shared,
                       known=known, **_chunking(call))
        return Evaluated(out.rounded.reshape(batch_shape), out.exact.reshape(batch_shape))
    soft = rows.soft

    def finish(B, total, *shared_args):
        if reduction == "sum":
            return total
        return total / ce.mean_divisor(B, M, shared_args[-1], soft)

    return evaluate_total(function, token_args, fmt, finish=finish,
                          shared=shared + [ce.weights_counted(rows)], known=known,
                          **_chunking(call))


# --- gradients -----------------------------------------------------------------------------------

def _logits_grad(call: Call, smoothing, reduction):
    """Engine function G(B, x, *token args, *shared): d loss / d z for a chunk of tokens as
    (n P, C) rows, the upstream gradient (before the mean's division) included; and its
    per-token arguments."""
    rows, C, M = call.rows, call.classes, call.row_count
    g = ce.upstream_rows(call.grad_output, rows, reduction)
    a = np.where(rows.valid, g, 0.0)
    columns = np.arange(C)[None, :]
    weight = rows.weight
    if rows.soft:
        q = np.abs(weight[None, :] * ce.smoothed_targets(rows.target, smoothing, C))
        top = np.argmax(q, axis=1) if C else np.zeros(M, dtype=np.int64)
        soft_grad = ce.soft_grad(smoothing, C, reduction, M)

        def grad(B, x, p, is_top, a, Wt, b, w, counted):
            n = x.shape[0]
            z, m, k, others, _, _ = _logit_parts(B, x, Wt, b, None, C)
            is_max = B.asarray((columns == k[:, None]).astype(np.float64))
            finite = B.asarray(np.ones(z.shape))
            w_full = B.asarray(np.broadcast_to(_plain(w), z.shape))
            return soft_grad(B, z, m, others, finite, is_max, _as_rows(B, p, n), w_full,
                             _as_rows(B, is_top, n), _as_rows(B, a, n), counted)

        is_top = (columns == top[:, None]).astype(np.float64)
        return grad, [call.per_token(v) for v in (rows.target, is_top, a)]
    ce_grad = ce.ce_grad(smoothing, C, reduction, M)

    def grad(B, x, t, w_t, a, Wt, b, w, counted):
        n = x.shape[0]
        z, m, k, others, z_t, targets = _logit_parts(B, x, Wt, b, t, C)
        is_t = B.asarray((columns == targets[:, None]).astype(np.float64))
        t_is_max = B.asarray((targets == k).astype(np.float64))
        finite = B.asarray(np.ones(z.shape))
        ones = B.asarray(np.ones(len(targets)))
        w_full = B.asarray(np.broadcast_to(_plain(w), z.shape))
        return ce_grad(B, z, m, others, finite, is_t, t_is_max, z_t, ones, _as_rows(B, w_t, n),
                       w_full, _as_rows(B, a, n), counted, w)

    per_row = (rows.t.astype(np.float64), weight[rows.t], a)
    return grad, [call.per_token(v) for v in per_row]


def _flat(B, G, tokens):
    """(n P, C) rows of a chunk's logits' gradient as (n, P C), position-major per token."""
    return B.reshape(G, (tokens, G.shape[0] * G.shape[1] // max(tokens, 1)))


def _soft_grads(call: Call, smoothing, reduction, fmt: Format, with_weight: bool,
                known: dict) -> dict:
    """Probability targets: d loss / d target (the target's shape) and, ``with_weight``,
    d loss / d weight (C,), each rounded once to fmt; ``known``: what a fast tier certified
    of them ('target', 'weight': ``engine.Known``), the engine's tiers the rest."""
    rows, C, M = call.rows, call.classes, call.row_count
    a = call.per_token(ce.upstream_rows(call.grad_output, rows, reduction))
    target_grad = ce.soft_target_grad(smoothing, reduction, M)

    def target_rows(B, x, a, Wt, b, w):
        z, m, _, others, _, _ = _logit_parts(B, x, Wt, b, None, C)
        w_row = B.asarray(np.broadcast_to(_plain(w), z.shape))
        out = target_grad(B, z, m, others, w_row, _as_rows(B, a, x.shape[0]))
        return B.reshape(out, a.shape + (C,))

    d_p = evaluate(target_rows, [call.x, a], fmt, independent="rows",
                   shared=[call.W_rows.T, call.b_rows, rows.weight], known=known.get("target"),
                   **_chunking(call))
    layout = [ce.to_input_layout(v.reshape(M, C), rows.input_shape)
              for v in (d_p.rounded, d_p.exact)]
    out = {"target": Evaluated(*layout)}
    if not with_weight:
        return out
    contribution = ce.soft_weight_grad(smoothing, C)

    def weight_sums(B, x, p, a, Wt, b):
        n = x.shape[0]
        z, m, _, others, _, _ = _logit_parts(B, x, Wt, b, None, C)
        return contribution(B, z, m, others, B.asarray(np.ones(z.shape)), _as_rows(B, p, n),
                            _as_rows(B, a, n))

    def finish(B, total, *_):
        return total if reduction != "mean" else total / M

    out["weight"] = evaluate_row_sums(weight_sums, [call.x, call.per_token(rows.target), a],
                                      fmt, finish=finish, shared=[call.W_rows.T, call.b_rows],
                                      known=known.get("weight"), **_chunking(call))
    return out


@reusing_splits()
@blas_on_one_thread()
def loss_grad(grad_output, input, linear_weight, target, linear_bias, weight, ignore_index,
              smoothing, reduction, fmt: Format) -> dict[str, Evaluated]:
    """The exact gradients in input, linear_weight and linear_bias (the last only when given),
    and with probability targets in the target and the class weight (when given), for the
    upstream gradient, each rounded once to fmt."""
    call = Call(input, linear_weight, target, linear_bias, weight, ignore_index)
    call.grad_output = grad_output
    rows, smoothing = call.rows, float(smoothing)
    D = call.x.shape[1]
    names = ["input", "linear_weight"] + ([] if linear_bias is None else ["linear_bias"])
    if rows.soft:
        names += ["target"] + ([] if weight is None else ["weight"])
    if call.row_count and ce.divisor_is_zero(rows, reduction) and rows.valid.any():
        raise EvaluationError("the weighted mean divides by a zero sum of weights: its "
                              "gradient is undefined")
    if call.row_count == 0 or not rows.valid.any():
        shapes = {"input": call.input_shape, "linear_weight": call.W.shape,
                  "linear_bias": call.b.shape, "target": np.shape(target),
                  "weight": (call.classes,)}
        return {name: filled(shapes[name], 0.0) for name in names}
    grad, token_args = _logits_grad(call, smoothing, reduction)
    shared = [call.W_rows.T, call.b_rows, rows.weight, ce.weights_counted(rows)]
    known_input = known_sums = None
    soft_known = {}
    if fast.applies(call, smoothing, fmt):
        known_input, known_sums = fast.gradients(call, reduction, fmt, ROW_CHUNK_LOGITS,
                                                 smoothing)
    elif rows.soft and double_double_tier.applies(call, None):  # any format
        soft_known = double_double_tier.soft_gradients(call, reduction, smoothing,
                                                       weight is not None, fmt) or {}
        known_input, known_sums = soft_known.get("input"), soft_known.get("layer")
    elif double_double_tier.applies(call, fmt):
        known_input, known_sums = (double_double_tier.gradients(call, reduction, smoothing)
                                   or (None, None))

    def input_rows(B, x, *rest):
        # G_flat W_rows: one sum over the P C logits of each token (W_rows from its transpose)
        return B.matmul(_flat(B, grad(B, x, *rest), x.shape[0]), B.transpose(rest[-4]))

    d_input = evaluate(input_rows, [call.x] + token_args, fmt, independent="rows",
                       shared=shared, known=known_input, **_chunking(call))
    out = {"input": Evaluated(d_input.rounded.reshape(call.input_shape),
                              d_input.exact.reshape(call.input_shape))}

    # G_flat^T [x, 1]: the weight's gradient in its first D columns, the bias's in the last.
    x_one = np.concatenate([call.x, np.ones((call.x.shape[0], 1))], axis=1)

    def layer_sums(B, x1, *rest, only=None):
        G = _flat(B, grad(B, x1[:, :D], *rest), x1.shape[0])
        if only is not None:  # a later tier: only the classes (rows of W_rows) left to certify
            G = G[:, only]
        return B.matmul(B.transpose(G), x1)

    sums = evaluate_row_sums(layer_sums, [x_one] + token_args, fmt, shared=shared,
                             selectable=True, known=known_sums, **_chunking(call))
    out["linear_weight"] = Evaluated(call.weight_layout(sums.rounded[:, :D]),
                                     call.weight_layout(sums.exact[:, :D]))
    if linear_bias is not None:
        out["linear_bias"] = Evaluated(call.weight_layout(sums.rounded[:, D]),
                                       call.weight_layout(sums.exact[:, D]))
    if rows.soft:
        out.update(_soft_grads(call, smoothing, reduction, fmt, weight is not None, soft_known))
    return out
