"""linear_cross_entropy's fast tiers: plain float64 arithmetic, its error bounded per row,
then long double for what it left.

The engine's ball tiers carry a radius for every logit through every operation: a dozen passes
over the (tokens, vocabulary) logits, and the exact logits of ``split_product`` cost several
matrix products more. For results rounded to float32 or narrower this tier instead computes
each logit with one float64 product and the softmax with a handful of passes, and bounds the
error of a whole row at once; ``engine.certify`` then decides element by element, and the
engine's tiers compute only what this one left uncertified (``engine.Known``). It covers the
2-D weight (one position per token) with index targets, with or without label smoothing (the
language-model case); ``applies`` says when. Smoothing adds terms of its own (``Smoothing``)
to the loss and to the products, each a ball (``SmoothingTerms`` for float32's
double-double first tier, whose products are of the kernel's gradient of unit weight times
K; its later tier smooths that gradient in double-double: ``linear_float64.SoftmaxGradient.
smooth``).

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
  and |g| differs from g only at the target: |g| |W| = g |W| + 2 rest |W_t|, so one product
  with [W, |W|] gives both (``sharp``, for float32); for 8 and 11 bits, row and column maxima
  bound |g| |W| and |g|^T |.| instead, without the second half of each product. The outputs
  these cheap bounds leave (a class in one batch of three) are recomputed in float64 with the
  sharp bounds of ``BallBackend.matmul``, for them alone (``refine`` in float64).

In float32 the weight's gradient holds sums over the batch that cancel far below their terms
(one in a thousand below a 64th of an ulp at 2^-45 of the magnitudes, where a BLAS product's
bound is about 2^-41). Where numba imports, float32's first tier is therefore
``linear_float64.blas_gradients``: every token's softmax gradient G in double-double, then one
BLAS product of its hi part by each operand, bounded through norms (``softmax_products``; its
product with the weight by blocks of classes: 2^-43.7 at 50,257 classes where one product's
bound is 2^-37), G kept (up to ``KEPT_LOGITS``); the second tier (``linear_float64.sharpen``)
bounds what the norms leave by products of magnitudes, and the third
(``linear_float64.refine``) takes the products of the rows and classes still left alone,
exact or nearly (``split_product``, Dot2 for a few rows).
Where numba
does not import, the float64 first tier above takes float32 too, with its sharp bounds. The
last tier (``refine``) recomputes every row's softmax in long double ball arithmetic, from
exact logits (``split_product``'s parts, added in long double: R_i is then their addition's
rounding), and only the outputs left: one exponential per logit, a fraction of the ball
tiers' (which would recompute the whole gradient twice over for a single class).
"""

from __future__ import annotations

import math

import numpy as np

from .balls import (FLOAT64, FLOAT64_BALLS, LONG_DOUBLE, LONG_DOUBLE_BALLS, Ball, Precision,
                    pairwise_sum, quiet)
from .classification import upstream_rows
from .decisions import float_sum
from .engine import Known, certify, parallel_map, row_chunks, streamed_sum
from .formats import Format
from . import linear_float64 as double_double_tier
from .split_product import norms, split_product

U = FLOAT64.unit_roundoff
TINY = FLOAT64.tiny
SLACK = 1 + 2.0 ** -40  # for the rounding of the bounds' own few operations
B = FLOAT64_BALLS
BACKENDS = {FLOAT64: FLOAT64_BALLS, LONG_DOUBLE: LONG_DOUBLE_BALLS}
DOUBLE_DOUBLE = double_double_tier.TIER
SHARP_LEVELS = 1  # the sharp bounds' logits: one exact level, their rest 2^-66 of the norms


def gamma(n: int, unit: float = U) -> float:
    """The relative error bound of a sum of n products, in any order (float64 by default)."""
    return n * unit / (1 - n * unit)


def applies(call, smoothing: float, fmt: Format) -> bool:
    """Whether this tier covers the call: a 2-D weight, index targets (label smoothing or
    not), results rounded to a format 8 or more bits narrower than float64, rows to
    compute."""
    return (not call.spatial and not call.rows.soft
            and fmt.precision + 8 <= 53 and call.row_count > 0 and call.classes > 0
            and call.x.shape[1] > 0)


class Smoothing:
    """Label smoothing e with index targets, torch's formula: per token (1 - e) w_t nlp_t +
    (e / C) sum_c w_c nlp_c, so that d loss / d z_c = a [K p_c - (1 - e) w_t [c = t] -
    (e / C) w_c] with K = (1 - e) w_t + (e / C) S_w, S_w = sum_c w_c (a the upstream over the
    'mean' divisor). That is the unsmoothed gradient with K for w_t, r g, plus a term
    s (S_w [c = t] - w_c), s = a e / C, which the products take apart: s (S_w W_t - v) for d
    input (v = w^T W) and, for d [W, b], S_w times each class's sum of s [x, 1] over the
    tokens whose target it is, less w_c times the sum over every token. Its constants are
    balls of ``precision``: 1 - e, e / C and S_w rounded there."""

    def __init__(self, call, smoothing: float, precision: Precision = FLOAT64):
        backend = BACKENDS[precision]
        self.precision, self.backend = precision, backend
        self.weight = call.rows.weight
        e = backend.asarray(np.array(smoothing))
        self.keep = 1 - e
        self.share = e / call.classes
        self.weight_sum = backend.sum(backend.asarray(self.weight))

    def factor(self, w_t: np.ndarray) -> Ball:
        """K per token: (1 - e) w_t + (e / C) S_w (w_t 0 where ignored: its a is 0)."""
        return self.keep * self.backend.asarray(w_t) + self.share * self.weight_sum

    def scale(self, a: np.ndarray, divisor: Ball | None) -> Ball:
        """s per token: a e / C (over the 'mean' divisor), exactly 0 where a is."""
        s = self.backend.asarray(a) * self.share
        if divisor is not None:
            dtype = self.precision.dtype
            s = s / Ball(divisor.mid.astype(dtype), divisor.rad.astype(dtype))
        return Ball(s.mid, np.where(a == 0, 0, s.rad))

    def weight_product(self, W: np.ndarray) -> Ball:
        """v = w^T W (1, D): one sum over the classes per feature."""
        return self.backend.matmul(self.backend.asarray(self.weight[None, :]),
                                   self.backend.asarray(W))

    def term(self, s: Ball, t: np.ndarray, classes: np.ndarray) -> Ball:
        """s_i (S_w [c = t_i] - w_c) for the tokens of ``s`` and ``t`` and the classes
        ``classes``: the part of G that smoothing adds, as balls."""
        onehot = (t[:, None] == classes[None, :]).astype(self.precision.dtype)
        inner = self.weight_sum * self.backend.asarray(onehot) - self.backend.asarray(
            self.weight[classes][None, :])
        return Ball(s.mid[:, None], s.rad[:, None]) * inner

    def input_term(self, s: Ball, t: np.ndarray, W: np.ndarray, v: Ball) -> Ball:
        """s_i (S_w W_{t_i} - v) (n, D): smoothing's part of d input."""
        inner = self.weight_sum * self.backend.asarray(W[t]) - v
        return Ball(s.mid[:, None], s.rad[:, None]) * inner

    def layer_term(self, s: Ball, t: np.ndarray, x_one: np.ndarray) -> Ball:
        """S_w sum_{i: t_i = c} s_i [x_i, 1] - w_c sum_i s_i [x_i, 1] (C, D + 1): smoothing's
        part of d [W, b] over these tokens (an ignored token's s is 0)."""
        u, tiny = self.precision.unit_roundoff, self.precision.tiny
        y = Ball(s.mid[:, None], s.rad[:, None]) * self.backend.asarray(x_one)
        n, C = len(t), len(self.weight)
        g = n * u / (1 - n * u)  # any order of n additions
        with quiet():
            by_target = np.zeros((C, y.shape[1]), dtype=y.mid.dtype)
            np.add.at(by_target, t, y.mid)
            magnitude = np.zeros_like(by_target)
            np.add.at(magnitude, t, np.abs(y.mid))
            radii = np.zeros_like(by_target)
            np.add.at(radii, t, y.rad)
            targets = Ball(by_target, (radii + g * magnitude + n * tiny) * SLACK)
            every = Ball(y.mid.sum(axis=0), (y.rad.sum(axis=0) + g * np.abs(y.mid).sum(axis=0)
                                             + n * tiny) * SLACK)
        weight = self.backend.asarray(self.weight[:, None])
        return self.weight_sum * targets - weight * Ball(every.mid[None, :], every.rad[None, :])


class Layer:
    """What every chunk of tokens shares: the weight (C, D), its transpose for the logits, its
    magnitude beside it for the bounds, the bias, the largest norm of a weight row."""

    def __init__(self, call):
        self.W = call.W_rows
        self.Wt = call.W_rows.T
        self.magnitude = np.abs(call.W_rows)
        self.abs_column_max = np.max(self.magnitude, axis=0, initial=0.0)
        self.abs_column_sums = self.magnitude.sum(axis=0) * SLACK
        self.b = None if not call.b_rows.any() else call.b_rows
        self.largest_norm = float(np.max(norms(call.W_rows, 1))) if call.classes else 0.0
        self.classes, self.features = call.classes, call.W_rows.shape[1]
        self._W_and_abs = None

    @property
    def W_and_abs(self) -> np.ndarray:
        """[W, |W|] (C, 2 D), made on first use (by the sharp bounds only)."""
        if self._W_and_abs is None:
            self._W_and_abs = np.concatenate([self.W, self.magnitude], axis=1)
        return self._W_and_abs


class Softmax:
    """One chunk of tokens' softmax in ``precision``: the exponentials e (n, C) of the shifted
    logits with e_k zeroed (k the largest logit's class), S' = sum of the others as a ball, the
    target's margin z_k - z_t as a ball, e_t, and the per-row relative error eta of every e_c.
    float64 takes its logits from one product, or where ``sharp`` from leveled parts
    (SHARP_LEVELS); long double from exact parts (``exact_logits``, None where
    ``split_product`` does not apply)."""

    def __init__(self, layer: Layer, x: np.ndarray, t: np.ndarray,
                 precision: Precision = FLOAT64, sharp: bool = False,
                 spread_weight: np.ndarray | None = None):
        u, tiny = precision.unit_roundoff, precision.tiny
        n, C = x.shape[0], layer.classes
        rows = np.arange(n)
        with quiet():
            if precision is not FLOAT64:
                z, R = exact_logits(layer, x, precision)
            else:
                z, R = exact_logits(layer, x, precision, SHARP_LEVELS) if sharp else \
                    _product(layer, x)
            if z is None:
                raise NotExact
            k = np.argmax(z, axis=1)
            top, low = z[rows, k], np.min(z, axis=1)
            finite = np.isfinite(top) & np.isfinite(low)
            R = np.where(finite, (R + u * np.maximum(top, -low)) * SLACK, np.inf)
            margin = top - z[rows, t]
            self.margin = Ball(margin, (2 * R + u * margin) * SLACK)
            self.top = top
            delta = (2 * R + u * (top - low)) * SLACK
            self.eta = (np.expm1(delta) * (1 + 8 * u) + 8 * u) * (1 + 16 * u)
            z -= top[:, None]
            if spread_weight is not None:
                self.spread = _spread(z, spread_weight, delta, u, tiny)
            e = np.exp(z, out=z)
            self.e_t = e[rows, t].copy()
            e[rows, k] = 0
            s, levels = pairwise_sum(e)
            g = gamma(levels, u)
            error = ((self.eta + g) * s * (1 + 2 * g) + 2 * (C + 1) * tiny) * SLACK
        self.e, self.k, self.t, self.rows, self.precision = e, k, t, rows, precision
        self.others = Ball(s, np.where(finite, error, np.inf))

    def loss(self, w_t: np.ndarray, counted: np.ndarray,
             smoothing: Smoothing | None = None) -> Ball:
        """Per row: w_t ((z_k - z_t) + log1p(S')), with smoothing (1 - e) times that plus
        (e / C) (sum_c w_c (z_k - z_c) + S_w log1p(S')) (the spread: ``spread_weight``);
        exactly 0 where the row does not count and where w_t is 0 without smoothing."""
        log_total = B.log1p(self.others)
        loss = B.asarray(w_t) * (self.margin + log_total)
        if smoothing is not None:
            loss = smoothing.keep * loss + smoothing.share * (
                self.spread + smoothing.weight_sum * log_total)
        zero = ~counted | ((w_t == 0) & (smoothing is None))
        return Ball(np.where(counted, loss.mid, 0.0), np.where(zero, 0.0, loss.rad))

    def gradient_rows(self, a, w_t, divisor):
        """Turn e into g in place (e_k = 1 again, -rest at the target) and return the row
        factor r = a w_t / (1 + S') (/ divisor) as a ball, rest, and g's error per row:
        |g - g_exact| <= eta' |g| + floor. ``w_t``: exact numbers, or balls (smoothing's
        K)."""
        backend = BACKENDS[self.precision]
        tiny = self.precision.tiny
        e, k, t, rows = self.e, self.k, self.t, self.rows
        total = 1 + self.others
        with quiet():  # a row whose bounds are infinite: its e_t may be 0, and inf 0 a NaN
            e_t_radius = self.eta * self.e_t + 2 * tiny
        e_t = Ball(self.e_t, np.where(np.isinf(self.eta), np.inf, e_t_radius))
        rest = backend.where(t == k, self.others, total - e_t)  # sum_{j != t} e_j
        factor = w_t if isinstance(w_t, Ball) else backend.asarray(w_t)
        r = backend.asarray(a) * factor / total
        if divisor is not None:
            r = r / Ball(divisor.mid.astype(e.dtype), divisor.rad.astype(e.dtype))
        # an ignored token's r is exactly 0: without the balls' underflow floor as its radius,
        # whose products with the token's features are subnormal and made the products of
        # the bounds (BLAS's) up to eight times slower
        zero_factor = (factor.mid == 0) & (factor.rad == 0)
        r = Ball(r.mid, np.where(((a == 0) | zero_factor) & (r.mid == 0), 0, r.rad))
        with quiet():
            e[rows, k] = 1
            e[rows, t] = -rest.mid
            positive = rest.mid > 0
            ratio = rest.rad / np.where(positive, rest.mid, 1)
            eta = np.maximum(self.eta, np.where(positive, ratio, 0))
            floor = 2 * tiny + np.where(positive, 0, rest.rad)
        return r, rest, eta, floor


def _spread(d: np.ndarray, w: np.ndarray, delta: np.ndarray, u: float, tiny: float) -> Ball:
    """sum_c w_c (z_k - z_c) per row from the shifted logits d = z - z_k (each within delta of
    its exact value): -(d w), within delta sum |w| and the product's rounding, gamma(C) of
    -(d |w|)."""
    C = d.shape[1]
    g = gamma(C, u)
    spread = -(d @ w.astype(d.dtype))
    magnitude = -(d @ np.abs(w).astype(d.dtype))
    error = ((delta * np.sum(np.abs(w)) + g * magnitude) * (1 + 2 * g) + 2 * C * tiny) * SLACK
    return Ball(spread, error)


class NotExact(Exception):
    """``split_product`` does not apply to these inputs (exponents beyond its range)."""


def _product(layer: Layer, x: np.ndarray):
    """(z, R): the logits x W^T + b from one float64 product and the bound of its rounding
    per row (the bias's addition excepted: the caller adds u |z|)."""
    z = x @ layer.Wt
    if layer.b is not None:
        z += layer.b
    D = layer.features
    # gamma last: a subnormal row's norm times gamma would underflow before its product
    R = norms(x, 1) * layer.largest_norm * (gamma(D) * (1 + 4 * gamma(D + 4))) + (D + 2) * TINY
    return z, R


def exact_logits(layer: Layer, x: np.ndarray, precision: Precision,
                 exact_levels: int | None = None):
    """(z, R): the logits in ``precision`` from exact float64 parts of the product
    (``split_product``, with ``exact_levels`` if given), their sum's rounding bounded per row,
    plus what the splitting left (zero for float32 inputs and all-exact parts); (None, None)
    where the splitting does not apply."""
    split = split_product(x, layer.Wt, exact_levels=exact_levels, row_bound=True)
    if split is None:
        return None, None
    parts, left = split
    dtype, u = precision.dtype, precision.unit_roundoff
    # the parts after the first are 2^-20 of it and less: added in float64 first (their sum's
    # rounding is 2^-70 of the logits), then to the first in long double, then the bias (the
    # parts are split_product's new arrays: float64 sums go into them, not into copies)
    R = u * _largest(parts[0]).astype(dtype)
    z = parts[0] if dtype == np.float64 else parts[0].astype(dtype)
    if len(parts) > 1:
        small = parts[1] if len(parts) == 2 else sum(parts[2:], parts[1].copy())
        z += small
        sizes = sum(_largest(p) for p in parts[1:])
        R += (gamma(len(parts) - 1) * sizes * (1 + 4 * U)).astype(dtype) + u * _largest(small)
    if layer.b is not None:
        z += layer.b
        R += u * (np.max(np.abs(layer.b)) + _largest(z).astype(dtype))
    R *= 1 + 4 * u
    if left.any():
        R += np.max(left, axis=1).astype(dtype) * (1 + 4 * u)
    return z, R + (len(parts) + 2) * precision.tiny


def _largest(values: np.ndarray) -> np.ndarray:
    """max |v| per row, without an array of |v|."""
    return np.maximum(np.max(values, axis=1), -np.min(values, axis=1))


def _divisor(call, reduction):
    """The 'mean' divisor W = sum of the counted w_t as a ball (math.fsum: correctly rounded,
    exact where the check says so), or None."""
    if reduction != "mean":
        return None
    counted = np.where(call.rows.valid, call.rows.weight[call.rows.t], 0.0)
    total = float_sum(counted)
    exact = math.isfinite(total) and float_sum(np.append(counted, -total)) == 0
    return Ball(np.array(total), np.array(0.0 if exact else U * abs(total)))


def loss_balls(call, reduction: str, chunk_logits: int, smoothing: float = 0.0) -> Ball:
    """The loss as balls: per row ('none') or reduced ('sum', 'mean'), computed by chunks of
    about ``chunk_logits`` logits."""
    layer, rows = Layer(call), call.rows
    w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
    smooth = Smoothing(call, smoothing) if smoothing else None
    spread_weight = rows.weight if smoothing else None
    chunks = _chunks(call, chunk_logits)
    parts = parallel_map(
        lambda c: Softmax(layer, call.x[c], rows.t[c], spread_weight=spread_weight).loss(
            w_t[c], rows.valid[c], smooth), chunks)
    per_row = Ball(np.concatenate([p.mid for p in parts]), np.concatenate([p.rad for p in parts]))
    if reduction == "none":
        return per_row
    total = B.sum(per_row)
    divisor = _divisor(call, reduction)
    return total if divisor is None else total / divisor


def loss(call, reduction: str, fmt: Format, chunk_logits: int, smoothing: float = 0.0) -> Known:
    """The fast tier of the loss: ``loss_balls`` certified (per row for 'none')."""
    ball = loss_balls(call, reduction, chunk_logits, smoothing)
    rounded, ok = certify(ball, fmt)
    return Known(rounded, ball.mid, ok)


def _chunks(call, chunk_logits: int) -> list:
    return row_chunks(call.row_count, call.classes, chunk_logits)


class Gradient:
    """What every chunk of a gradient shares: the layer, the upstream gradient a and w_t per
    token (0 where ignored), the 'mean' divisor, the tokens with a column of ones."""

    def __init__(self, call, reduction: str, smoothing: float = 0.0):
        rows = call.rows
        self.call, self.layer = call, Layer(call)
        self.a = np.where(rows.valid, upstream_rows(call.grad_output, rows, reduction), 0.0)
        self.w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
        self.divisor = _divisor(call, reduction)
        self.x_one = np.concatenate([call.x, np.ones((call.x.shape[0], 1))], axis=1)
        self.smoothing = {p: Smoothing(call, smoothing, p) if smoothing else None
                          for p in BACKENDS}

    def rows(self, c: slice, precision: Precision = FLOAT64, sharp: bool = False):
        """(softmax, r, rest, eta', floor) of the tokens ``c``, e turned into g (``sharp``: as
        ``Softmax``'s; with smoothing r holds K for w_t)."""
        soft = Softmax(self.layer, self.call.x[c], self.call.rows.t[c], precision, sharp)
        smooth = self.smoothing[precision]
        factor = self.w_t[c] if smooth is None else smooth.factor(self.w_t[c])
        return (soft,) + soft.gradient_rows(self.a[c], factor, self.divisor)

    def smoothing_term(self, c, classes: np.ndarray, precision: Precision = FLOAT64):
        """Smoothing's part of G at the tokens ``c`` and the classes ``classes`` as balls
        (``Smoothing.term``), or None without smoothing."""
        smooth = self.smoothing[precision]
        if smooth is None:
            return None
        s = smooth.scale(self.a[c], self.divisor)
        return smooth.term(s, self.call.rows.t[c], classes)


class KeptRows:
    """What the first tier's softmax leaves per token for a later float64 tier: the row's
    shift (its largest computed logit), r, rest, eta' and floor (``Softmax.gradient_rows``).
    With them a class's column of g is one exponential per token away, not every row's
    softmax."""

    def __init__(self, tokens: int):
        self.top, self.r_mid, self.r_rad, self.rest, self.eta, self.floor = (
            np.empty(tokens) for _ in range(6))

    def keep(self, c: slice, soft, r: Ball, rest: Ball, eta, floor) -> None:
        """Store the rows ``c`` (after ``gradient_rows`` turned soft.e into g)."""
        self.top[c] = soft.top
        self.r_mid[c], self.r_rad[c] = r.mid, r.rad
        self.rest[c], self.eta[c], self.floor[c] = rest.mid, eta, floor


def gradient_balls(call, reduction: str, chunk_logits: int, sharp: bool = True,
                   kept: KeptRows | None = None, smoothing: float = 0.0) -> tuple[Ball, Ball]:
    """d loss / d input (N, D) and d loss / d [W, b] (C, D + 1) as balls, for the upstream
    gradient ``call.grad_output``. ``sharp``: the products' error bounds from products of the
    magnitudes (two more matrix products); else from row and column maxima, a few times
    looser and nearly free (enough for formats of 8 and 11 bits). ``kept``: where to keep
    each token's softmax for ``refine_from_kept``. ``smoothing``: label smoothing's terms
    (``Smoothing``) are added to each chunk's products as balls."""
    grad = Gradient(call, reduction, smoothing)
    layer = grad.layer
    n, D = call.x.shape
    d_input = np.empty((n, D)), np.empty((n, D))
    smooth = grad.smoothing[FLOAT64]
    weight_product = smooth.weight_product(layer.W) if smooth is not None else None

    def chunk(c):
        soft, r, rest, eta, floor = grad.rows(c, sharp=sharp)
        if kept is not None:
            kept.keep(c, soft, r, rest, eta, floor)
        g, t = soft.e, soft.t
        C, m = layer.classes, len(t)
        with quiet():
            # d input = r (g W); sum_c |g_c| |W_cd|: |g| |W| = g |W| + 2 rest |W_t| (g's only
            # negative entry is at the target), or <= (sum_c |g_c|) max_c |W_cd|, where
            # sum_c |g_c| = 2 rest (the entries off the target add up to rest)
            if sharp:
                both = g @ layer.W_and_abs
                product, magnitude = both[:, :D], both[:, D:]
                magnitude += 2 * rest.mid[:, None] * np.abs(layer.W[t])
            else:
                product = g @ layer.W
                row_sums = 2 * ((rest.mid + rest.rad) * (1 + eta) + C * TINY) * SLACK
                magnitude = row_sums[:, None] * layer.abs_column_max
            error = ((gamma(C) + eta[:, None]) * magnitude * (1 + 4 * gamma(C) + 4 * U)
                     + floor[:, None] * layer.abs_column_sums + (C + 1) * TINY) * SLACK
            d_x = Ball(r.mid[:, None], r.rad[:, None]) * Ball(product, error)
            if smooth is not None:
                s = smooth.scale(grad.a[c], grad.divisor)
                d_x = d_x + smooth.input_term(s, t, layer.W, weight_product)
            d_input[0][c], d_input[1][c] = d_x.mid, d_x.rad
            # d [W, b] = g^T V, V = r [x, 1]: V's own error nu, and the bound |g|^T Q, from
            # g^T Q + 2 rest Q at each token's target, or <= (sum_i |g_ic|) max_i Q_id with
            # sum_i |g_ic| = g^T 1 + 2 rest at each token's target
            x1 = grad.x_one[c]
            V = r.mid[:, None] * x1
            nu = (U * np.abs(V) + r.rad[:, None] * np.abs(x1)) * SLACK
            Q = ((gamma(m) + eta[:, None]) * np.abs(V) + (1 + eta[:, None]) * nu) * SLACK
            right = Q if sharp else np.ones((m, 1))
            both = g.T @ np.concatenate([V, right], axis=1)
            sums, bound = both[:, :D + 1], both[:, D + 1:]
            np.add.at(bound, t, 2 * rest.mid[:, None] * right)
            bound *= (1 + 4 * gamma(m) + 4 * U) * SLACK
            if not sharp:
                bound = bound * np.max(Q, axis=0)
            bound += floor @ (np.abs(V) + nu) * SLACK + (m + 1) * TINY
        return Ball(sums, bound)

    layer_sums = streamed_sum(chunk, _chunks(call, chunk_logits))
    if smooth is not None:  # over every token at once: (C, D + 1) balls, not one a chunk
        s = smooth.scale(grad.a, grad.divisor)
        layer_sums = layer_sums + smooth.layer_term(s, call.rows.t, grad.x_one)
    return Ball(*d_input), layer_sums


def refine(call, reduction: str, chunk_logits: int, tokens: np.ndarray, classes: np.ndarray,
           precision: Precision = LONG_DOUBLE, smoothing: float = 0.0):
    """A later tier: d loss / d input at the rows ``tokens`` and d loss / d [W, b] at the
    rows ``classes``, as balls of ``precision`` from each row's softmax recomputed, their
    products bounded element by element (``BallBackend.matmul``). Long double computes the
    softmax from exact logits, and returns None where ``split_product`` does not apply;
    float64 from the first tier's logits (the sharp bounds, for what the cheap ones left)."""
    grad = Gradient(call, reduction, smoothing)
    backend = BACKENDS[precision]
    W = call.W_rows.astype(precision.dtype)
    every_class = np.arange(call.classes)
    d_input = {}

    def chunk(c):
        soft, r, _, eta, floor = grad.rows(c, precision)
        g = soft.e
        mine = tokens[(tokens >= c.start) & (tokens < c.stop)]
        if len(mine):
            local = mine - c.start
            rows = g[local]
            G = _smoothed(_row_scaled(r[local], _within(rows, eta[local], floor[local])),
                          grad.smoothing_term(mine, every_class, precision))
            d_input[c.start] = backend.matmul(G, backend.asarray(W))
        if not len(classes):
            return None
        columns = g[:, classes]
        G = _smoothed(_row_scaled(r, _within(columns, eta, floor)),
                      grad.smoothing_term(c, classes, precision))
        return backend.matmul(backend.transpose(G), backend.asarray(grad.x_one[c]))

    chunks = _chunks(call, chunk_logits)
    try:
        if len(classes):
            layer_sums = streamed_sum(chunk, chunks)
        else:
            layer_sums = parallel_map(chunk, chunks) and None
    except NotExact:
        return None
    input_rows = None
    if d_input:
        parts = [d_input[start] for start in sorted(d_input)]
        input_rows = Ball(np.concatenate([p.mid for p in parts]),
                          np.concatenate([p.rad for p in parts]))
    return input_rows, layer_sums


def refine_from_kept(call, reduction: str, tokens: np.ndarray, classes: np.ndarray,
                     kept: KeptRows, smoothing: float = 0.0):
    """``refine`` in float64 for what the cheap bounds left, from the first tier's ``kept``
    softmax: d loss / d input at the rows ``tokens`` from those rows' softmax recomputed (those
    rows alone), d loss / d [W, b] at the rows ``classes`` from their columns of g, one
    product and one exponential per token and class (g_c = exp(z_c - top) with the kept shift,
    -rest at the target). The bounds are the first tier's: its R_i covers any order of a
    product's sums, so the columns' own product lies within it too, and the kept eta' covers
    every e_c of the row (its largest logit's 1 included)."""
    grad = Gradient(call, reduction, smoothing)
    input_rows = layer_sums = None
    if len(tokens):
        soft, r, _, eta, floor = grad.rows(tokens)
        G = _smoothed(_row_scaled(r, _within(soft.e, eta, floor)),
                      grad.smoothing_term(tokens, np.arange(call.classes)))
        input_rows = B.matmul(G, B.asarray(call.W_rows))
    if len(classes):
        with quiet():
            z = call.x @ call.W_rows[classes].T
            if grad.layer.b is not None:
                z += grad.layer.b[classes]
            g = np.exp(z - kept.top[:, None], out=z)
            g = np.where(call.rows.t[:, None] == classes[None, :], -kept.rest[:, None], g)
        G = _smoothed(_row_scaled(Ball(kept.r_mid, kept.r_rad), _within(g, kept.eta, kept.floor)),
                      grad.smoothing_term(slice(None), classes))
        layer_sums = B.matmul(B.transpose(G), B.asarray(grad.x_one))
    return input_rows, layer_sums


def _within(values: np.ndarray, eta: np.ndarray, floor: np.ndarray) -> Ball:
    """``values`` (rows of g) as balls of radius eta |v| + floor, eta and floor per row; an
    infinite radius where eta is (a row an earlier tier left, whose zeros would make inf x 0 a
    NaN radius)."""
    with quiet():
        radius = eta[:, None] * np.abs(values) + floor[:, None]
    return Ball(values, np.where(np.isinf(eta)[:, None], np.inf, radius))


def _smoothed(G: Ball, term: Ball | None) -> Ball:
    """G plus smoothing's term where there is one."""
    return G if term is None else G + term


def _row_scaled(r: Ball, values: Ball) -> Ball:
    """Each row of ``values`` times its ball r_i."""
    return Ball(r.mid[:, None], r.rad[:, None]) * values


def gradients(call, reduction: str, fmt: Format, chunk_logits: int,
              smoothing: float = 0.0) -> tuple[Known, Known]:
    """The fast tiers of the gradients, certified: per token for the input's, per element
    for the weight's and the bias's; each later tier only where the earlier ones left some.
    With label smoothing float32's double-double tiers take the unit gradient times K and
    add smoothing's terms (``SmoothingTerms``)."""
    # 2^-38 of the magnitudes or so: the cheap bounds certify 8 and 11 bits all but always
    sharp = fmt.precision > 16
    kept = None if sharp else KeptRows(call.x.shape[0])
    # for 24 bits, where numba imports, the first tier is double-double's softmax (its kept
    # gradient spares the second tier every row's softmax), else float64's; with label
    # smoothing its products are the unsmoothed gradient's with K for w_t, and smoothing's
    # own terms (``SmoothingTerms``) are added to them and to the second tier's
    first = double_double_tier.blas_gradients(call, reduction, smoothing) if sharp else None
    terms = SmoothingTerms(call, reduction, smoothing) if first and smoothing else None
    if first is not None:
        d_input, layer_sums, kept_gradient = first
        if terms is not None:
            d_input, layer_sums = terms.added(d_input, layer_sums)
    else:
        kept_gradient = None
        d_input, layer_sums = gradient_balls(call, reduction, chunk_logits, sharp, kept=kept,
                                             smoothing=smoothing)
    # the estimates in float64: within 2^-53 of the midpoints, far inside the ESTIMATE_ULPS
    # of an ulp of the narrower formats here (the engine makes them long doubles once)
    rounded, ok = certify(d_input, fmt)
    known_input = Known(rounded, d_input.mid, ok.all(axis=1))
    rounded, ok = certify(layer_sums, fmt)
    known_sums = Known(rounded, layer_sums.mid, ok)
    tokens = np.flatnonzero(~known_input.ok)
    classes = np.flatnonzero(~known_sums.ok.all(axis=1))
    for known in (known_input, known_sums):
        known.tiers = {FLOAT64.name: int(known.ok.sum())}
    # The cheap bounds' rare misses (a class in a few batches) first take float64 with sharp
    # bounds, from the first tier's kept softmax: a column of g costs one exponential a token.
    # float32's first tier (double-double's softmax) bounds its products through norms; what
    # they leave takes the sharp bounds from its kept G. The sharp bounds' misses (sums that
    # cancel) take double-double where numba imports (the products of those rows and columns
    # alone, of the first tier's kept G where it kept one, else of every row's softmax
    # recomputed), then long double.
    later = ([(FLOAT64.name,
               lambda t, c: refine_from_kept(call, reduction, t, c, kept, smoothing))]
             if not sharp else
             [(FLOAT64.name, lambda t, c: _with_terms(
                 double_double_tier.sharpen(kept_gradient, t, c), terms, t, c)),
              (DOUBLE_DOUBLE, lambda t, c: double_double_tier.refine(
                  call, reduction, t, c, kept_gradient, smoothing))])
    later.append((LONG_DOUBLE.name, lambda t, c: refine(call, reduction, chunk_logits, t, c,
                                                        LONG_DOUBLE, smoothing)))
    for name, tier in later:
        if not (len(tokens) or len(classes)):
            break
        refined = _side_by_side(tier, tokens, classes)
        if refined is not None:
            _complete(known_input, tokens, refined[0], fmt, True, name)
            _complete(known_sums, classes, refined[1], fmt, False, name)
        tokens = np.flatnonzero(~known_input.ok)
        classes = np.flatnonzero(~known_sums.ok.all(axis=1))
    return known_input, known_sums


class SmoothingTerms:
    """Label smoothing's own parts of the two gradients as float64 balls (``Smoothing``):
    s (S_w W_t - v) per token (``input``, (N, D)) and the layer's sums (``layer``, (C, D +
    1)), for a tier whose products are of the unsmoothed gradient with K for w_t."""

    def __init__(self, call, reduction: str, smoothing: float):
        grad = Gradient(call, reduction, smoothing)
        smooth, W = grad.smoothing[FLOAT64], grad.layer.W
        s = smooth.scale(grad.a, grad.divisor)
        self.input = smooth.input_term(s, call.rows.t, W, smooth.weight_product(W))
        self.layer = smooth.layer_term(s, call.rows.t, grad.x_one)

    def added(self, d_input: Ball | None, layer: Ball | None, tokens=slice(None),
              classes=slice(None)) -> tuple:
        """The two products' balls (at the rows ``tokens`` and ``classes``) plus these; None
        stays None."""
        return (None if d_input is None else d_input + self.input[tokens],
                None if layer is None else layer + self.layer[classes])


def _with_terms(refined, terms: SmoothingTerms | None, tokens, classes):
    """A later tier's (d input at ``tokens``, d [W, b] at ``classes``) plus smoothing's terms
    (where given); None stays None."""
    if refined is None or terms is None:
        return refined
    return terms.added(*refined, tokens, classes)


def _side_by_side(tier, tokens: np.ndarray, classes: np.ndarray):
    """``tier(tokens, classes)``: where both are to do, ``tier(tokens, none)`` and ``tier(none,
    classes)`` on the reference's threads side by side (a tier's products of rows and of
    classes are independent, and each is a handful of small products and gathers that one
    core ran one after the other); a tier that does not apply gives None for either."""
    if not (len(tokens) and len(classes)):
        return tier(tokens, classes)
    none = np.empty(0, dtype=np.intp)
    by_rows, by_classes = parallel_map(lambda job: tier(*job), [(tokens, none), (none, classes)])
    if by_rows is None and by_classes is None:
        return None
    return (None if by_rows is None else by_rows[0],
            None if by_classes is None else by_classes[1])


def _complete(known: Known, where: np.ndarray, ball, fmt: Format, rows: bool,
              tier: str) -> None:
    """Put a later tier's results for the rows ``where`` into ``known`` where it certified
    them: whole rows for the input's gradient (``rows``: ``known.ok`` per row), else element
    by element; ``tier`` counts them."""
    if ball is None or not len(where):
        return
    rounded, ok = certify(ball, fmt)
    if rows:
        row_ok = ok.all(axis=1)
        better = row_ok & ~known.ok[where]
        done = where[better]
        known.rounded[done] = rounded[better]
        known.exact[done] = ball.mid[better]
        known.ok[done] = True
    else:
        better = ok & ~known.ok[where]
        known.rounded[where] = np.where(better, rounded, known.rounded[where])
        known.exact[where] = np.where(better, ball.mid, known.exact[where])
        known.ok[where] |= better
    known.tiers[tier] = known.tiers.get(tier, 0) + int(better.sum())
