"""linear_cross_entropy's fast tier: plain float64 arithmetic, its error bounded per row.

The engine's ball tiers carry a radius for every logit through every operation: a dozen passes
over the (tokens, vocabulary) logits, and the exact logits of ``split_product`` cost several
matrix products more. For results rounded to float32 or narrower this tier instead computes
each logit with one float64 product and the softmax with a handful of passes, and bounds the
error of a whole row at once; ``engine.certify`` then decides element by element, and the
engine's tiers compute only what this one left uncertified (``engine.Known``). It covers the
2-D weight (one position per token) with index targets and no label smoothing (the language-
model case); ``applies`` says when.

The bounds, per token i, with u = 2^-53 and every inequality widened a little for the
rounding of the bounds themselves:

- logits: z = x W^T + b from one BLAS product errs by at most gamma(D) sum_d |x_d w_cd| <=
  gamma(D) ||x_i|| ||w_c|| (Cauchy-Schwarz; any order of the sum, fused or not), plus u |z| for
  the bias: R_i = gamma(D) ||x_i|| max_c ||w_c|| + u max_c |z_ic|.
- shifted logits d_c = z_c - z_k (k the row's largest computed logit, a decision): each errs by
  delta_i = 2 R_i + u (z_k - min_c z_c); their exponentials e_c (e_k = 1 exactly) by
  eta_i e_c + 2 tiny, eta_i = expm1(delta_i) + 8 u (the libm's error, as ``balls.LIBM_ULPS``).
- S' = sum_{c != k} e_c, pairwise (``balls.pairwise_sum``: gamma(levels)): a ball; the loss
  w_t ((z_k - z_t) + log1p(S')) and everything else per row in ball arithmetic.
- gradient: G = r g with r_i = a_i w_t / (1 + S') (over the 'mean' divisor) a ball per row
  and g_ic = e_c off the target, -rest at it (rest = sum_{c != t} e_c, without cancellation).
  d input = r (g W) and d [W, b] = g^T (r [x, 1]) are two products; each errs by at most
  (gamma(inner) + eta'_i) |g| |.| (eta'_i the relative error of g's row, rest's included),
  and |g| differs from g only at the target: |g| |W| = g |W| + 2 rest |W_t|, one product with
  [W, |W|] gives both.
"""

from __future__ import annotations

import math

import numpy as np

from .balls import FLOAT64, FLOAT64_BALLS, Ball, pairwise_sum, quiet
from .classification import upstream_rows
from .engine import Known, certify, parallel_map, row_chunks, streamed_sum
from .formats import Format
from .split_product import norms

U = FLOAT64.unit_roundoff
TINY = FLOAT64.tiny
SLACK = 1 + 2.0 ** -40  # for the rounding of the bounds' own few operations
B = FLOAT64_BALLS


def gamma(n: int) -> float:
    """The relative error bound of a sum of n products in float64, in any order."""
    return n * U / (1 - n * U)


def applies(call, smoothing: float, fmt: Format) -> bool:
    """Whether this tier covers the call: a 2-D weight, index targets, no label smoothing,
    results rounded to a format 8 or more bits narrower than float64, rows to compute."""
    return (not call.spatial and not call.rows.soft and smoothing == 0
            and fmt.precision + 8 <= 53 and call.row_count > 0 and call.classes > 0
            and call.x.shape[1] > 0)


class Layer:
    """What every chunk of tokens shares: the weight (C, D), its transpose for the logits, its
    magnitude beside it for the bounds, the bias, the largest norm of a weight row."""

    def __init__(self, call):
        self.W = call.W_rows
        self.Wt = call.W_rows.T
        self.W_and_abs = np.concatenate([call.W_rows, np.abs(call.W_rows)], axis=1)
        self.abs_column_sums = np.abs(call.W_rows).sum(axis=0) * SLACK
        self.b = None if not call.b_rows.any() else call.b_rows
        self.largest_norm = float(np.max(norms(call.W_rows, 1))) if call.classes else 0.0
        self.classes, self.features = call.classes, call.W_rows.shape[1]


class Softmax:
    """One chunk of tokens' softmax: the exponentials e (n, C) of the shifted logits with
    e_k zeroed (k the largest logit's class), S' = sum of the others as a ball, the target's
    margin z_k - z_t as a ball, e_t, and the per-row relative error eta of every e_c."""

    def __init__(self, layer: Layer, x: np.ndarray, t: np.ndarray):
        n, C, D = x.shape[0], layer.classes, layer.features
        rows = np.arange(n)
        with quiet():
            z = x @ layer.Wt
            if layer.b is not None:
                z += layer.b
            k = np.argmax(z, axis=1)
            top, low = z[rows, k], np.min(z, axis=1)
            finite = np.isfinite(top) & np.isfinite(low)
            R = ((gamma(D) * norms(x, 1) * layer.largest_norm * (1 + 4 * gamma(D + 4))
                  + U * np.maximum(top, -low)) * SLACK + (D + 2) * TINY)
            R = np.where(finite, R, np.inf)
            margin = top - z[rows, t]
            self.margin = Ball(margin, (2 * R + U * margin) * SLACK)
            delta = (2 * R + U * (top - low)) * SLACK
            self.eta = (np.expm1(delta) * (1 + 8 * U) + 8 * U) * (1 + 16 * U)
            z -= top[:, None]
            e = np.exp(z, out=z)
            self.e_t = e[rows, t].copy()
            e[rows, k] = 0.0
            s, levels = pairwise_sum(e)
            g = gamma(levels)
            error = ((self.eta + g) * s * (1 + 2 * g) + 2 * (C + 1) * TINY) * SLACK
        self.e, self.k, self.rows = e, k, rows
        self.others = Ball(s, np.where(finite, error, np.inf))

    def loss(self, w_t: np.ndarray) -> Ball:
        """Per row: w_t ((z_k - z_t) + log1p(S')); exactly 0 where w_t is (ignored rows)."""
        loss = B.asarray(w_t) * (self.margin + B.log1p(self.others))
        return Ball(loss.mid, np.where(w_t == 0, 0.0, loss.rad))


def _divisor(call, reduction):
    """The 'mean' divisor W = sum of the counted w_t as a ball (math.fsum: correctly rounded,
    exact where the check says so), or None."""
    if reduction != "mean":
        return None
    counted = np.where(call.rows.valid, call.rows.weight[call.rows.t], 0.0)
    total = math.fsum(counted)
    exact = math.fsum(np.append(counted, -total)) == 0
    return Ball(np.array(total), np.array(0.0 if exact else U * abs(total)))


def loss_balls(call, reduction: str, chunk_logits: int) -> Ball:
    """The loss as balls: per row ('none') or reduced ('sum', 'mean'), computed by chunks of
    about ``chunk_logits`` logits."""
    layer, rows = Layer(call), call.rows
    w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
    chunks = _chunks(call, chunk_logits)
    parts = parallel_map(lambda c: Softmax(layer, call.x[c], rows.t[c]).loss(w_t[c]), chunks)
    per_row = Ball(np.concatenate([p.mid for p in parts]), np.concatenate([p.rad for p in parts]))
    if reduction == "none":
        return per_row
    total = B.sum(per_row)
    divisor = _divisor(call, reduction)
    return total if divisor is None else total / divisor


def loss(call, reduction: str, fmt: Format, chunk_logits: int) -> Known:
    """The fast tier of the loss: ``loss_balls`` certified (per row for 'none')."""
    ball = loss_balls(call, reduction, chunk_logits)
    rounded, ok = certify(ball, fmt)
    return Known(rounded, ball.mid, ok)


def _chunks(call, chunk_logits: int) -> list:
    return row_chunks(call.row_count, call.classes, chunk_logits)


def gradient_balls(call, reduction: str, chunk_logits: int) -> tuple[Ball, Ball]:
    """d loss / d input (N, D) and d loss / d [W, b] (C, D + 1) as balls, for the upstream
    gradient ``call.grad_output``."""
    layer, rows = Layer(call), call.rows
    n, D = call.x.shape
    a = np.where(rows.valid, upstream_rows(call.grad_output, rows, reduction), 0.0)
    w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
    divisor = _divisor(call, reduction)
    d_input = np.empty((n, D)), np.empty((n, D))
    x_one = np.concatenate([call.x, np.ones((n, 1))], axis=1)

    def chunk(c):
        soft = Softmax(layer, call.x[c], rows.t[c])
        e, k, t, at = soft.e, soft.k, rows.t[c], soft.rows
        total = 1 + soft.others
        e_t = Ball(soft.e_t, soft.eta * soft.e_t + 2 * TINY)
        rest = B.where(t == k, soft.others, total - e_t)  # sum_{j != t} e_j
        r = B.asarray(a[c]) * B.asarray(w_t[c]) / total
        if divisor is not None:
            r = r / divisor
        with quiet():
            e[at, k] = 1.0
            e[at, t] = -rest.mid  # g: the gradient's row before the factor r
            positive = rest.mid > 0
            eta = np.maximum(soft.eta, np.where(positive, rest.rad / np.where(positive,
                                                                               rest.mid, 1), 0))
            floor = 2 * TINY + np.where(positive, 0.0, rest.rad)  # |g - g_exact| <= eta|g| + floor
            # d input = r (g W): g [W, |W|], then |g| |W| = g |W| + 2 rest |W_t|
            both = e @ layer.W_and_abs
            product, magnitude = both[:, :D], both[:, D:]
            magnitude += 2 * rest.mid[:, None] * np.abs(layer.W[t])
            C = layer.classes
            error = ((gamma(C) + eta[:, None]) * magnitude * (1 + 4 * gamma(C) + 4 * U)
                     + floor[:, None] * layer.abs_column_sums + (C + 1) * TINY) * SLACK
            d_x = Ball(r.mid[:, None], r.rad[:, None]) * Ball(product, error)
            d_input[0][c], d_input[1][c] = d_x.mid, d_x.rad
            # d [W, b] = g^T V, V = r [x, 1]: V's own error nu, then one product g^T [V, Q]
            x1 = x_one[c]
            V = r.mid[:, None] * x1
            nu = (U * np.abs(V) + r.rad[:, None] * np.abs(x1)) * SLACK
            m = len(t)
            Q = ((gamma(m) + eta[:, None]) * np.abs(V) + (1 + eta[:, None]) * nu) * SLACK
            both = e.T @ np.concatenate([V, Q], axis=1)
            sums, bound = both[:, :D + 1], both[:, D + 1:]
            np.add.at(bound, t, 2 * rest.mid[:, None] * Q)  # |g|^T Q = g^T Q + 2 rest Q at t
            bound *= (1 + 4 * gamma(m) + 4 * U) * SLACK
            bound += floor @ (np.abs(V) + nu) * SLACK + (m + 1) * TINY
        return Ball(sums, bound)

    layer_sums = streamed_sum(chunk, _chunks(call, chunk_logits))
    return Ball(*d_input), layer_sums


def gradients(call, reduction: str, fmt: Format, chunk_logits: int) -> tuple[Known, Known]:
    """The fast tier of the gradients: ``gradient_balls`` certified, per token for the
    input's, per element for the weight's and the bias's."""
    d_input, layer_sums = gradient_balls(call, reduction, chunk_logits)
    rounded, ok = certify(d_input, fmt)
    known_input = Known(rounded, d_input.mid, ok.all(axis=1))
    rounded, ok = certify(layer_sums, fmt)
    return known_input, Known(rounded, layer_sums.mid, ok)

