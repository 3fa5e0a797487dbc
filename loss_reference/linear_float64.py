"""linear_cross_entropy rounded to float64: a double-double tier.

For float64 results the ball tiers fell to arb (2e3 input elements/s): long double cannot hold
a softmax's chain to the 64th of an ulp that certification needs. Here, per chunk of tokens:

- the logits: the parts of x W^T from ``split_product`` (products of slices, exact in
  float64, and the rest as one rounded part, within 2^-80 of the operands' norms: ``levels``),
  added with the bias in double-double (``double_double.sum_parts``: within (P + 1) 2 u^2 of
  the parts' magnitudes, plus the parts' own bound, per row the largest);
- the loss and d loss / d z per row: cross_entropy's kernels on those logits
  (``double_double.softmax_loss_rows``, ``softmax_gradient_rows``: G = r (softmax - onehot),
  one relative error bound eps per row). The loss, a sum that does not cancel, takes cheaper
  products (LOSS_REST); both add the logits' parts row by row inside their kernels
  (``softmax_loss_parts``, ``softmax_gradient_parts``: the logits are never written out);
  the few tokens the loss leaves take Dot2 (``double_double.dot_rows``);
- d loss / d x = G W and d loss / d [W, b] = G^T [x, 1]: G's hi part times the other operand
  through ``split_product`` again (parts as the logits'), its lo part (below u of hi) by one BLAS
  product whose error is at most gamma(K) |G_lo| |.|; G's own error adds eps |G| |.|, a
  product of magnitudes (nonnegative, so BLAS's rounding only scales it by 1 + gamma(K)).
  The chunks' sums of the weight's gradient add in double-double with their bounds.
- what this first pass leaves (a loss near a rounding boundary, a gradient's sum that cancels
  by 20 binades or so) a second pass computes from all-exact products, on those tokens and
  classes alone (the gradient's still needs every token's softmax). The cheap products took
  half the time of all-exact ones (4-20 exact products, each of float64's 53 bits in 2-3
  slices, where 3 to 7 do at 2^-80).

It covers a 2-D weight with index targets for float64 results, where ``split_product`` applies
and numba imports (``applies``; probability targets too: ``soft_loss`` and ``soft_gradients``,
the logits as double-doubles into cross_entropy's kernel for them), with or without label
smoothing (the loss by the kernels' smoothed variants; the gradients by
``SoftmaxGradient.smoothed_rows``: the kernel's gradient of unit weight times K = (1 - e) w_t +
(e / C) S_w, plus (e / C) a (S_w [c = t] - w_c), in double-double, each element bounded
relative to the sizes of its terms); whatever it leaves the engine's tiers compute. For results
of 24 bits it is also ``linear_fast``'s first tier (``blas_gradients``: the double-double
softmax gradient of every token, kept, and its products by one BLAS product each, bounded
through norms: ``softmax_products``), its second (``sharpen``: products of magnitudes for the
rows and classes the norms leave), and for those and narrower results its third (``refine``):
the outputs whose sums cancel below the sharp bounds, from the products of those rows and
classes alone (of the kept gradient, or of every row's softmax recomputed)."""

from __future__ import annotations

import math

import numpy as np

from .balls import Ball
from .classification import upstream_rows, weights_counted
from .classification_fast import gradient_factors
from .compiled_kernels import TIER, exact_divisor, kernels, known, known_in, known_total
from .engine import ESTIMATE_ULPS, Known, even_slices, parallel_map, row_chunks, streamed_sum
from .formats import FORMATS, Format
from .softmax_products import GradientProducts
from .split_product import slice_bits, split_product
from .split_product import gamma as blas_gamma

CHUNK_LOGITS = 1 << 21  # logits per chunk of tokens, as linear's: a class's products amortised
U = 2.0 ** -53
TINY = 2.0 ** -1022
ROUNDED_REST = 2.0 ** -80  # the rounded rest's bound of a cheap product, of the operands' norms
# a loss, a sum of logits that does not cancel (``double_double.softmax_loss_rows``), needs its
# logits within about 2^-59 of its value: at this share of the norms, any loss above 2^-5 of
# them; one exact level up to 2^11 terms, where ROUNDED_REST took two
LOSS_REST = 2.0 ** -64
# the soft gradients' products G W and G^T [x, 1] for results of 24 bits and fewer: one exact
# level up to 4096 terms where LOSS_REST took two; 2^-52 of the norms, where a float32 result
# needs about 2^-30 of itself (``soft_gradients``)
PRODUCT_REST = 2.0 ** -52
# up to this many tokens left by the first pass take ``double_double.dot_rows`` (0.3 ms a token
# at 4096 x 64); more take exact products, whose split of the weight cost about 30 tokens' worth
DOT_TOKENS = 32
DOT_LARGEST = 2.0 ** 450  # ``dot_rows``' domain (its TwoProducts' errors stay normal numbers)
# ``blas_gradients`` keeps every token's softmax gradient for ``refine`` up to this many logits
# (256 MB of hi and lo parts); beyond, ``refine`` recomputes every row's softmax
KEPT_LOGITS = 1 << 24


def applies(call, fmt: Format | None) -> bool:
    """Whether this tier covers the call: float64 results (``fmt`` None: results of any
    format, as ``soft_gradients`` certifies them) of a 2-D weight with index or probability
    targets (``loss``, ``gradients``; ``soft_gradients``), tokens and classes to compute, and
    numba here."""
    return ((fmt is None or fmt == FORMATS["float64"]) and not call.spatial
            and call.row_count > 0 and call.classes > 0 and call.x.shape[1] > 0
            and kernels() is not None)


def levels(inner: int, rest: float = ROUNDED_REST) -> int:
    """``split_product``'s exact levels for a cheap product over ``inner`` terms: the fewest
    whose rounded rest, about gamma((s + 1) inner) sqrt(inner) 2^(-beta s) of the operands'
    norms (its s + 1 rounded products, summed as one), is below ``rest`` (for ROUNDED_REST,
    2 for up to 512 terms, 3 for 1024 to 65536). A gradient is then left to the exact
    products (the second pass) only where its sum cancels by 20 binades or so; a loss
    (LOSS_REST) where it lies below 2^-5 of its logits' norms."""
    beta = slice_bits(inner)
    s = 1
    while blas_gamma((s + 1) * inner + 8) * math.sqrt(inner) * 2.0 ** (-beta * s) > rest:
        s += 1
    return s


def _exact_sum(dd, a, b, extra=None, extra_error=None, reuse=False, cheap=True,
               rest=ROUNDED_REST, dot=False):
    """a @ b (2-D float64) as a double-double with an absolute error bound per element, from
    ``split_product``'s parts (``reuse``: b is the layer's, split once; ``cheap``: with
    ``levels(inner, rest)``, else every part exact); ``extra`` (n, m) is added, within
    ``extra_error``. None where the splitting does not apply. ``dot``: for at most DOT_TOKENS
    rows of a by the layer's b (C-contiguous), Dot2 instead (``double_double.dot_rows``,
    within 2^-100 or so of the terms' magnitudes): splitting the layer cost as much as 30."""
    if (dot and reuse and a.shape[0] <= DOT_TOKENS and b.flags.c_contiguous
            and _largest(a) < DOT_LARGEST and _largest(b) < DOT_LARGEST):  # NaN: False
        n, m = a.shape[0], b.shape[1]
        parts, bound = np.empty((2, n, m)), np.empty((n, m))
        dd.dot_rows(a, b, np.zeros(m), parts[0], parts[1], bound)
    else:
        split = split_product(a, b, reuse=reuse,
                              exact_levels=levels(a.shape[1], rest) if cheap else None)
        if split is None:
            return None
        parts, bound = split
    n, m = parts[0].shape
    if extra is None:
        extra = np.empty((0, m))
    if extra_error is None:
        extra_error = np.zeros((n, m))
    hi, lo, error = np.empty((n, m)), np.empty((n, m)), np.empty((n, m))
    dd.sum_parts(np.asarray(parts), extra, extra_error, np.broadcast_to(bound, (n, m)), hi, lo,
                 error)
    return hi, lo, error


def _largest(values: np.ndarray) -> float:
    """max |v|, without an array of |v| (a vocabulary's weight: 50 MB and more)."""
    if not values.size:
        return 0.0
    return float(max(np.max(values), -np.min(values)))


def _bias(call) -> np.ndarray:
    """The bias as ``double_double.sum_parts``' extra: (1, C), or (0, C) where it is zero."""
    return call.b_rows.reshape(1, -1)[:int(call.b_rows.any())]


def loss(call, reduction: str, smoothing: float = 0.0) -> Known | None:
    """The loss rounded to float64 as Known: per token ('none', ok per token) or the total
    (one element); None where ``split_product`` does not apply. With label smoothing the
    kernels' smoothed variants (``double_double.softmax_smoothed_loss_parts``); with
    probability targets ``soft_loss``."""
    if call.rows.soft:
        return soft_loss(call, reduction, smoothing)
    dd = kernels()
    M, t, w_t = call.row_count, call.rows.t, weights_counted(call.rows)
    hi, lo, error = np.empty(M), np.empty(M), np.empty(M)
    ok = np.zeros(M, dtype=bool)
    Wt = call.W_rows.T
    if smoothing:
        counted, weight = call.rows.valid, call.rows.weight
        S = exact_divisor(weight)

    def kernel_args(c) -> tuple:  # the per-token arguments after the logits
        if not smoothing:
            return t[c], w_t[c]
        return t[c], w_t[c], counted[c], weight, smoothing, *S

    def rows(c, cheap=True) -> bool:
        x = call.x[c]
        split = split_product(x, Wt, reuse=True, row_bound=True,
                              exact_levels=levels(x.shape[1], LOSS_REST) if cheap else None)
        if split is None:
            return False
        parts, bound = split
        n = x.shape[0]
        out = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
        kernel = dd.softmax_smoothed_loss_parts if smoothing else dd.softmax_loss_parts
        kernel(np.asarray(parts), _bias(call), np.broadcast_to(0.0, (n, call.classes)),
               np.broadcast_to(bound, (n, call.classes)), *kernel_args(c), ESTIMATE_ULPS,
               *dd.exp_constants(), *out)
        hi[c], lo[c], error[c], ok[c] = out
        return True

    def exact_rows(tokens):  # a few tokens' logits by Dot2: no split of the weight
        n, C = len(tokens), call.classes
        z_hi, z_lo, z_error = np.empty((n, C)), np.empty((n, C)), np.empty((n, C))
        dd.dot_rows(call.x[tokens], np.ascontiguousarray(Wt), call.b_rows, z_hi, z_lo, z_error)
        out = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
        kernel = dd.softmax_smoothed_loss_rows if smoothing else dd.softmax_loss_rows
        kernel(z_hi, z_lo, z_error.max(axis=1), np.argmax(z_hi, axis=1),
               *kernel_args(tokens), ESTIMATE_ULPS, *dd.exp_constants(), *out)
        hi[tokens], lo[tokens], error[tokens], ok[tokens] = out

    if not all(parallel_map(rows, row_chunks(M, call.classes, CHUNK_LOGITS))):
        return None
    again = np.flatnonzero(~ok)  # the cheap products' rest may leave a loss near a boundary
    if len(again) > DOT_TOKENS:
        rows(again, cheap=False)
    elif len(again):
        exact_rows(again)
    if reduction == "none":
        return known(hi.reshape(M, 1), lo.reshape(M, 1), ok)
    return known_total(hi, lo, error, exact_divisor(w_t) if reduction == "mean" else None)


def soft_loss(call, reduction: str, smoothing: float) -> Known | None:
    """``loss`` with probability targets p: per token sum_c w_c q_c nlp_c, q = (1 - e) p + e / C,
    the 'mean' over the tokens. Per chunk of tokens the logits as double-doubles
    (``_exact_sum``: the loss's cheap products, LOSS_REST, added with the bias), each row's
    bound the largest of its elements', then cross_entropy's kernel for probability targets
    (``double_double.softmax_soft_rows``, which takes the logits' lo parts and bound); the
    tokens it leaves again from exact products. None where ``split_product`` does not
    apply."""
    dd = kernels()
    M = call.row_count
    p = np.ascontiguousarray(call.rows.target, dtype=np.float64)
    weight = np.ascontiguousarray(call.rows.weight, dtype=np.float64)
    hi, lo, error = np.empty(M), np.empty(M), np.empty(M)
    ok = np.zeros(M, dtype=bool)
    Wt = call.W_rows.T  # one object: the weight is split once
    # the kernel's d input and d target (hi, lo, error, ok each), and the weight's parts: none
    no_outputs = (np.empty((0, 0)),) * 3 + (np.zeros(0, dtype=bool),)

    def rows(c, cheap=True) -> bool:
        logits = _exact_sum(dd, call.x[c], Wt, _bias(call), reuse=True, cheap=cheap,
                            rest=LOSS_REST)
        if logits is None:
            return False
        z_hi, z_lo, z_error = logits
        n = len(z_hi)
        out = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
        dd.softmax_soft_rows((z_hi, z_lo, z_error.max(axis=1)), np.argmax(z_hi, axis=1), p[c],
                             weight, smoothing, 1.0, np.zeros(n), False, ESTIMATE_ULPS,
                             *dd.exp_constants(), *out, *no_outputs, *no_outputs,
                             *no_outputs[:3])
        hi[c], lo[c], error[c], ok[c] = out
        return True

    if not all(parallel_map(rows, row_chunks(M, call.classes, CHUNK_LOGITS))):
        return None
    again = np.flatnonzero(~ok)  # near a rounding boundary, or class weights that cancel
    if len(again) and not rows(again, cheap=False):
        return None
    if reduction == "none":
        return known(hi.reshape(M, 1), lo.reshape(M, 1), ok)
    return known_total(hi, lo, error, (float(M), 0.0) if reduction == "mean" else None)


def soft_gradients(call, reduction: str, smoothing: float, weight_gradient: bool,
                   fmt: Format = FORMATS["float64"]):
    """With probability targets: {name: Known} of d loss / d input (ok per token), d loss /
    d [W, b] ('layer', (C, D + 1), ok per element), d loss / d target ((N, 1, C) as the engine
    lays it out, ok per token) and, where ``weight_gradient``, d loss / d weight ((C,), ok per
    element), rounded to ``fmt`` (``_certified``); None where ``split_product`` does not apply.
    Per chunk of tokens: the logits as double-doubles (``_exact_sum``, ROUNDED_REST for
    float64: a gradient's sums may cancel; LOSS_REST for results of 24 bits and fewer, as
    ``blas_gradients``' logits), ``double_double.softmax_soft_rows`` (G = d loss / d z and
    d target with an absolute bound per element, the weight's parts per token summed by
    columns), then G W and G^T [x, 1] by ``_product`` with G's bounds (at PRODUCT_REST for
    the narrower results: 0.31-0.35 s -> 0.27 s at the ladder's third rung); the layer's chunks and
    the weight's added in double-double. A token the kernel leaves (its logits spread beyond
    its domain) leaves its d input and every class's sums to the engine's tiers."""
    dd = kernels()
    rows, M, C, D = call.rows, call.row_count, call.classes, call.x.shape[1]
    p = np.ascontiguousarray(rows.target, dtype=np.float64)
    weight = np.ascontiguousarray(rows.weight, dtype=np.float64)
    a = upstream_rows(call.grad_output, rows, reduction)
    divisor = float(M) if reduction == "mean" else 1.0
    Wt, W = call.W_rows.T, call.W_rows  # one transpose object: the weight is split once
    W_magnitude = np.abs(W)
    x_one = np.concatenate([call.x, np.ones((M, 1))], axis=1)
    x_magnitude = np.abs(x_one)
    d_input = [np.empty((M, D)) for _ in range(3)]
    d_target = [np.empty((M, C)) for _ in range(3)]
    layer = [np.zeros((C, D + 1)) for _ in range(3)]
    weight_sums = [np.zeros((1, C)) for _ in range(3)]
    wide = fmt == FORMATS["float64"]
    rest = ROUNDED_REST if wide else LOSS_REST
    product_rest = ROUNDED_REST if wide else PRODUCT_REST

    def chunk(c: slice):
        logits = _exact_sum(dd, call.x[c], Wt, _bias(call), reuse=True, rest=rest)
        if logits is None:
            raise NotSplit
        z_hi, z_lo, z_error = logits
        n = len(z_hi)
        loss = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
        G = [np.empty((n, C)) for _ in range(3)] + [np.empty(n, dtype=bool)]
        parts = [np.empty((n, C) if weight_gradient else (0, 0)) for _ in range(3)]
        # estimate_ulps 0: the kernel's own certification skipped (its loss and ok flags are
        # not used here; ``_certified`` rounds from the bounds), a tenth of the call
        dd.softmax_soft_rows((z_hi, z_lo, z_error.max(axis=1)), np.argmax(z_hi, axis=1), p[c],
                             weight, smoothing, divisor, a[c], True, 0.0,
                             *dd.exp_constants(), *loss, *G, *(v[c] for v in d_target),
                             np.empty(n, dtype=bool), *parts)
        G_hi, G_lo, G_error = G[:3]
        left = ~np.isfinite(G_error).all(axis=1)  # the kernel's zeros, bounded inf
        G_error[left] = 0.0
        d_x = _product(dd, G_hi, G_lo, None, None, W, W_magnitude, reuse=True, rest=product_rest,
                       error=G_error)
        part = _product(dd, G_hi.T, G_lo.T, None, None, x_one[c], x_magnitude[c],
                        rest=product_rest,
                        error=G_error.T)
        if d_x is None or part is None:
            raise NotSplit
        d_x[2][left] = np.inf
        for array, value in zip(d_input, d_x):
            array[c] = value
        if left.any():
            part[2][:] = np.inf
        sums = None
        if weight_gradient:
            sums = [np.empty((1, C)) for _ in range(3)]
            dd.column_sums(*parts, *(v[0] for v in sums))
        return part, sums

    try:
        chunks = row_chunks(M, C, CHUNK_LOGITS)
        for start in range(0, len(chunks), 2):  # two at a time: a chunk's (C, D + 1) each
            for part, sums in parallel_map(chunk, chunks[start:start + 2]):
                dd.accumulate(*layer, *part)
                if sums is not None:
                    dd.accumulate(*weight_sums, *sums)
    except NotSplit:
        return None
    out = {"input": _certified(dd, *d_input, fmt, rows_only=True),
           "layer": _certified(dd, *layer, fmt)}
    target = _certified(dd, *d_target, fmt, rows_only=True)
    out["target"] = Known(target.rounded.reshape(M, 1, C), target.exact.reshape(M, 1, C),
                          target.ok, target.tiers)
    if weight_gradient:
        totals = _certified(dd, *weight_sums, fmt)
        out["weight"] = Known(totals.rounded[0], totals.exact[0], totals.ok[0], totals.tiers)
    return out


def _certified(dd, hi, lo, error, fmt: Format, rows_only: bool = False) -> Known:
    """The double-doubles hi + lo (2-D), each within ``error``, rounded to ``fmt`` as Known:
    ``_known`` for float64, ``compiled_kernels.known_in`` (``certify_narrower``) for narrower
    formats; ok per row where ``rows_only``."""
    if fmt == FORMATS["float64"]:
        return _known(dd, hi, lo, error, rows_only)
    rounded = known_in(hi, lo, error, None, fmt)
    ok = rounded.ok.all(axis=1) if rows_only else rounded.ok
    return Known(rounded.rounded, rounded.exact, ok, {TIER: int(ok.sum())})


def gradients(call, reduction: str, smoothing: float = 0.0) -> tuple[Known, Known] | None:
    """d loss / d input (ok per token) and d loss / d [W, b] (C, D + 1; ok per element)
    rounded to float64, as Known, for index targets; None where ``split_product`` does not
    apply."""
    parts = gradient_parts(call, reduction, np.arange(call.row_count),
                           np.arange(call.classes), smoothing=smoothing)
    if parts is None:
        return None
    dd = kernels()
    d_input, layer = _known(dd, *parts[0], rows_only=True), _known(dd, *parts[1], rows_only=False)
    # what the cheap products' rest leaves (sums that cancel), from exact products
    tokens, classes = np.flatnonzero(~d_input.ok), np.flatnonzero(~layer.ok.all(axis=1))
    if not (len(tokens) or len(classes)):
        return d_input, layer
    again = gradient_parts(call, reduction, tokens, classes, cheap=False, smoothing=smoothing)
    if again is None:
        return d_input, layer
    for done, redone, where in zip(parts, again, (tokens, classes)):
        for array, rows in zip(done, redone):
            array[where] = rows
    return _known(dd, *parts[0], rows_only=True), _known(dd, *parts[1], rows_only=False)


class NotSplit(Exception):
    """``split_product`` does not apply to a chunk's inputs (exponents beyond its range)."""


class SoftmaxGradient:
    """What a gradient's chunks share: the kernels, the upstream factors per token
    (``gradient_factors``), the weight's transpose (one array object, split once)."""

    def __init__(self, call, reduction: str, smoothing: float = 0.0):
        rows = call.rows
        self.dd, self.call, self.Wt = kernels(), call, call.W_rows.T
        self.a = np.where(rows.valid, upstream_rows(call.grad_output, rows, reduction), 0.0)
        self.w_t, self.divisor, self.zero = gradient_factors(rows, self.a, reduction)
        self.smoothing = smoothing
        if smoothing:  # the kernel's gradient of unit weight, smoothed after (``smoothed``)
            self.kernel_w = np.where(rows.valid, 1.0, 0.0)
            self.kernel_zero = (self.a == 0) | (call.classes == 1)
            self.weight_sum = exact_divisor(rows.weight)
        else:
            self.kernel_w, self.kernel_zero = self.w_t, self.zero

    def factor(self) -> tuple:
        """(K, its relative error bound) per token: label smoothing's weight of the unit
        gradient, (1 - e) w_t + (e / C) S_w, in float64 (1 - e, e / C, S_w's rounding, two
        products and a sum: within 6 u of the terms' magnitudes, K itself inf-bounded where
        they cancel to 0)."""
        keep, share = 1.0 - self.smoothing, self.smoothing / self.call.classes
        terms = np.abs(keep * self.w_t) + abs(share * self.weight_sum[0])
        K = keep * self.w_t + share * self.weight_sum[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.where(terms == 0, 0.0, 6 * U * terms / np.abs(K)) * (1 + 2.0 ** -40)
        return K, np.where(np.isnan(relative), np.inf, relative)

    def rows(self, c, cheap=True, rest=ROUNDED_REST, quick=False, out=None):
        """(G_hi, G_lo, eps, left) of the tokens ``c`` (a slice or indices): d loss / d z =
        r (softmax - onehot) as double-doubles within eps |G_hi| per row, from the logits'
        parts (``split_product`` with ``levels(D, rest)`` where ``cheap``, else all exact) by
        ``double_double.softmax_gradient_parts`` (``quick``: its exponentials); ``left``: the
        rows the kernel left (outside its domain), zeros here with eps 0. Into ``out`` (G_hi,
        G_lo, eps) where given. Raises NotSplit where ``split_product`` does not apply."""
        dd, call = self.dd, self.call
        x = call.x[c]
        split = split_product(x, self.Wt, reuse=True, row_bound=True,
                              exact_levels=levels(x.shape[1], rest) if cheap else None)
        if split is None:
            raise NotSplit
        parts, bound = split
        n, C = x.shape[0], call.classes
        G_hi, G_lo, eps = out or (np.empty((n, C)), np.empty((n, C)), np.empty(n))
        # the logits' parts added a row at a time inside the kernel, never written out
        dd.softmax_gradient_parts(np.asarray(parts), _bias(call), np.broadcast_to(0.0, (n, C)),
                                  np.broadcast_to(bound, (n, C)), call.rows.t[c], self.a[c],
                                  self.kernel_w[c], *self.divisor, self.kernel_zero[c], 0.0,
                                  *dd.exp_constants(), G_hi, G_lo, eps,
                                  np.empty(n, dtype=bool), quick)  # G's bounds: certify nothing
        left = ~np.isfinite(eps)  # rows the kernel left hold anything: zeros, bounded inf
        G_hi[left], G_lo[left], eps[left] = 0.0, 0.0, 0.0
        return G_hi, G_lo, eps, left

    def smoothed_rows(self, c, cheap=True, rest=ROUNDED_REST, quick=False):
        """(G_hi, G_lo, eps, left, magnitude): ``rows`` with label smoothing (``rows`` of
        unit weight, then ``double_double.smoothed_gradient_rows``), G within eps times
        ``magnitude`` elementwise (the sizes of its terms, which cancel where the softmax
        meets the smoothing's share); without smoothing ``rows``' with |G_hi|."""
        G_hi, G_lo, eps, left = self.rows(c, cheap, rest, quick)
        if not self.smoothing:
            return G_hi, G_lo, eps, left, np.abs(G_hi)
        return self.smooth(G_hi, G_lo, eps, left, c)

    def smooth(self, G_hi, G_lo, eps, left, tokens, classes=None):
        """``smoothed_rows``' results from unit-weight rows ``tokens`` (a slice or indices) of
        G (in place), at the columns ``classes`` (every class where None)."""
        rows = self.call.rows
        t, weight = rows.t[tokens], rows.weight
        if classes is not None:  # the target's column among them, or -1
            column = np.full(self.call.classes, -1)
            column[classes] = np.arange(len(classes))
            t, weight = column[t], weight[classes]
        magnitude = np.empty(G_hi.shape)
        self.dd.smoothed_gradient_rows(G_hi, G_lo, eps, t, self.a[tokens], self.w_t[tokens],
                                       *self.divisor, self.smoothing, self.call.classes,
                                       *self.weight_sum, weight, magnitude)
        left = left | ~np.isfinite(eps)
        G_hi[left], G_lo[left], eps[left], magnitude[left] = 0.0, 0.0, 0.0, 0.0
        return G_hi, G_lo, eps, left, magnitude


class KeptGradient:
    """Every token's softmax gradient as ``blas_gradients`` made it (G_hi, G_lo (M, C), eps
    (M,); of unit weight under label ``smoothing``), for ``refine``; ``complete`` unless a row
    was left; the weight's magnitude |W|; ``products``: its products by the layer
    (``softmax_products``), for ``sharpen``."""

    def __init__(self, tokens: int, classes: int, weight_magnitude: np.ndarray,
                 smoothing: float = 0.0):
        self.hi, self.lo = np.empty((tokens, classes)), np.empty((tokens, classes))
        self.eps = np.empty(tokens)
        self.complete = True
        self.weight_magnitude = weight_magnitude
        self.smoothing = smoothing
        self.products = None

    def rows(self, c: slice) -> tuple:
        """The arrays' rows ``c``, for ``SoftmaxGradient.rows``' out."""
        return self.hi[c], self.lo[c], self.eps[c]


def blas_gradients(call, reduction: str, smoothing: float = 0.0):
    """``linear_fast``'s first tier for results of 24 bits and fewer, where numba imports:
    d loss / d input (N, D) and d loss / d [W, b] (C, D + 1) as float64 balls, and the kept
    softmax gradient for ``sharpen`` and ``refine`` (None beyond KEPT_LOGITS), or None where
    this does not apply. Every token's G in double-double (``SoftmaxGradient``: quick,
    LOSS_REST), then one BLAS product of G_hi by each operand (``softmax_products``: the
    input's by blocks of classes, ``blocked_product``: a vocabulary's bound was 2^-37 and left
    a third of the tokens; the weight's over the tokens, gamma(M), whose looser bound's few
    more classes cost the later tiers less than blocks would), bounded by norms where G is
    kept (``sharpen`` then takes the rows and classes they leave), else by products of
    magnitudes, chunk by chunk. With label smoothing e the kept G has unit weight (as
    ``refine`` smooths it) and the products take it times K = (1 - e) w_t + (e / C) S_w
    (``SoftmaxGradient.factor``): the unsmoothed gradient with K for w_t, to which
    ``linear_fast`` adds smoothing's own terms."""
    if kernels() is None or call.spatial or call.rows.soft:
        return None
    softmax = SoftmaxGradient(call, reduction, smoothing)
    M, C, D = call.row_count, call.classes, call.x.shape[1]
    K, K_error = softmax.factor() if smoothing else (softmax.w_t, None)
    sign = np.sign(softmax.a) * np.sign(K) * np.sign(softmax.divisor[0])
    d_input = np.empty((M, D)), np.empty((M, D))

    def weighted(G_hi, eps, left, c) -> tuple:
        """(G, eps, left) of the products: with smoothing, the unit gradient times K (K's
        error and the product's rounding added to eps; a row whose K is unbounded left)."""
        if K_error is None:
            return G_hi, eps, left
        left = left | ~np.isfinite(K_error[c])
        G = G_hi * K[c, None]
        G[left] = 0.0
        return G, np.where(left, 0.0, (eps + K_error[c] + U) * (1 + 2.0 ** -40)), left

    def chunk(c: slice) -> Ball:
        G_hi, _, eps, left = softmax.rows(c, rest=LOSS_REST, quick=True)
        products = GradientProducts(call, *weighted(G_hi, eps, left, c), sign, tokens=c)
        rows = products.input_sharp(slice(None))
        d_input[0][c], d_input[1][c] = rows.mid, rows.rad
        return products.layer_sharp(slice(None))

    chunks = row_chunks(M, C, CHUNK_LOGITS)
    try:
        if M * C > KEPT_LOGITS:  # too many to keep: each chunk's products as it goes
            return Ball(*d_input), streamed_sum(chunk, chunks), None
        kept = KeptGradient(M, C, np.abs(call.W_rows), smoothing)
        left = np.concatenate(parallel_map(
            lambda c: softmax.rows(c, rest=LOSS_REST, quick=True, out=kept.rows(c))[3],
            chunks))
    except NotSplit:
        return None
    # every token's products at once: the weight's gradient is written once, not once a chunk
    # (at 50,257 classes, each chunk's (C, 2 D + 2) product took 100 MB); on every core, each
    # thread the input's gradient at a share of the tokens and the weight's at a share of the
    # classes (BLAS on one thread: ``linear.loss_grad`` runs in ``blas_on_one_thread``)
    kept.complete = not left.any()
    kept.products = products = GradientProducts(call, *weighted(kept.hi, kept.eps, left,
                                                                slice(None)),
                                                 sign, W_magnitude=kept.weight_magnitude)
    token_parts, class_parts = even_slices(M, len(chunks)), even_slices(C, len(chunks))

    def share(k: int) -> tuple:
        return products.input_by_norms(token_parts[k]), products.layer_by_norms(class_parts[k])

    pieces = parallel_map(share, list(range(len(chunks))))
    return tuple(Ball(np.concatenate([p[i].mid for p in pieces]),
                      np.concatenate([p[i].rad for p in pieces])) for i in (0, 1)) + (kept,)


def sharpen(kept: KeptGradient | None, tokens: np.ndarray, classes: np.ndarray):
    """The second tier for results of 24 bits and fewer: d loss / d input at the rows
    ``tokens`` and d loss / d [W, b] at the rows ``classes`` as float64 balls with the sharp
    bounds (``softmax_products``), from ``blas_gradients``' kept gradient; None where it kept
    none."""
    if kept is None or kept.products is None:
        return None
    return kept.products.sharp(tokens, classes)


def refine(call, reduction: str, tokens: np.ndarray, classes: np.ndarray,
           kept: KeptGradient | None = None, smoothing: float = 0.0):
    """A later tier for results narrower than float64 (``linear_fast.gradients``): d loss / d
    input at the rows ``tokens`` and d loss / d [W, b] at the rows ``classes`` as float64
    balls (the double-double's hi part, its lo part and error bound as the radius); None where
    this tier does not apply. The products of those rows and columns alone, of ``kept``'s
    softmax gradient where it is complete, else of every row's softmax recomputed (each r_t
    sums a whole row)."""
    if kernels() is None or call.spatial or call.rows.soft:
        return None
    if kept is not None and kept.complete and kept.smoothing == smoothing:
        parts = _kept_parts(call, reduction, kept, tokens, classes)
    else:
        parts = gradient_parts(call, reduction, tokens, classes, rest=LOSS_REST, quick=True,
                               smoothing=smoothing)
    if parts is None:
        return None
    return tuple(Ball(hi, np.abs(lo) + error) if len(hi) else None for hi, lo, error in parts)


def _kept_parts(call, reduction: str, kept: KeptGradient, tokens: np.ndarray,
                classes: np.ndarray):
    """``gradient_parts``' results (cheap products at LOSS_REST) from ``kept``, over every
    token at once (smoothed first where it was kept of unit weight: ``SoftmaxGradient.
    smooth``); None where ``split_product`` does not apply."""
    dd = kernels()
    D, M = call.x.shape[1], call.row_count
    softmax = SoftmaxGradient(call, reduction, kept.smoothing) if kept.smoothing else None

    def gathered(G_hi, G_lo, eps, rows, columns=None):  # (G_hi, G_lo, eps, left, magnitude)
        if softmax is None:
            return G_hi, G_lo, eps, np.zeros(len(eps), dtype=bool), np.abs(G_hi)
        return softmax.smooth(G_hi, G_lo, eps, np.zeros(len(eps), dtype=bool), rows, columns)

    parts = [(np.empty((0, D)),) * 3, (np.empty((0, D + 1)),) * 3]
    if len(tokens):
        G_hi, G_lo, eps, left, magnitude = gathered(kept.hi[tokens], kept.lo[tokens],
                                                    kept.eps[tokens], tokens)
        parts[0] = _product(dd, G_hi, G_lo, eps[:, None], magnitude, call.W_rows,
                            kept.weight_magnitude, reuse=True, rest=LOSS_REST, dot=True)
        if parts[0] is not None:
            parts[0][2][left] = np.inf
    if len(classes):
        G_hi, G_lo, eps, left, magnitude = gathered(kept.hi[:, classes], kept.lo[:, classes],
                                                    kept.eps.copy(), slice(None), classes)
        x_one = np.concatenate([call.x, np.ones((M, 1))], axis=1)
        parts[1] = _product(dd, np.ascontiguousarray(G_hi.T), np.ascontiguousarray(G_lo.T),
                            eps[None, :], np.ascontiguousarray(magnitude.T), x_one,
                            np.abs(x_one), rest=LOSS_REST)
        if parts[1] is not None and left.any():
            parts[1][2][:] = np.inf
    return None if parts[0] is None or parts[1] is None else tuple(parts)


def gradient_parts(call, reduction: str, tokens: np.ndarray, classes: np.ndarray,
                   cheap: bool = True, rest: float = ROUNDED_REST, quick: bool = False,
                   smoothing: float = 0.0):
    """((hi, lo, error) of d loss / d input at the rows ``tokens`` (sorted), (hi, lo, error) of
    d loss / d [W, b] at the rows ``classes``): double-doubles and their absolute error
    bounds, elementwise; None where ``split_product`` does not apply. ``cheap``: the products
    (the logits, and by G) with ``levels(inner, rest)`` exact, else all exact; ``quick``: the
    softmax's exponentials by ``quick_exp`` (both for what needs 60-odd bits, not 106);
    ``smoothing``: label smoothing's G (``SoftmaxGradient.smoothed_rows``)."""
    dd = kernels()
    softmax = SoftmaxGradient(call, reduction, smoothing)
    M, C, D = call.row_count, call.classes, call.x.shape[1]
    W, x_one = call.W_rows, np.concatenate([call.x, np.ones((M, 1))], axis=1)
    W_magnitude, x_magnitude = np.abs(W), np.abs(x_one)
    every_class = len(classes) == C
    d_input = {}
    K = len(classes)
    sums = [np.zeros((K, D + 1)), np.zeros((K, D + 1)), np.zeros((K, D + 1))]
    failed = []

    def chunk(c):
        try:
            G_hi, G_lo, eps, left, G_magnitude = softmax.smoothed_rows(c, cheap, rest, quick)
        except NotSplit:
            failed.append(c)
            return None
        n = len(eps)
        if isinstance(c, slice):
            first, mine = c.start, tokens[(tokens >= c.start) & (tokens < c.stop)] - c.start
        else:  # the tokens' own rows
            first, mine = c[0], np.arange(n)
        if len(mine):
            d_x = _product(dd, G_hi[mine], G_lo[mine], eps[mine, None], G_magnitude[mine], W,
                           W_magnitude, reuse=True, cheap=cheap, rest=rest)
            if d_x is None:
                failed.append(c)
                return None
            d_x[2][left[mine]] = np.inf
            d_input[first] = d_x
        if not K:
            return None
        if not every_class:
            G_hi, G_lo, G_magnitude = G_hi[:, classes], G_lo[:, classes], G_magnitude[:, classes]
        layer = _product(dd, G_hi.T, G_lo.T, eps[None, :], G_magnitude.T, x_one[c],
                         x_magnitude[c], cheap=cheap, rest=rest)
        if layer is None:
            failed.append(c)
            return None
        if left.any():
            layer[2][:] = np.inf
        return layer

    if K:  # every token's softmax: a class's sum runs over them all
        chunks = row_chunks(M, C, CHUNK_LOGITS)
    else:  # the rows of d loss / d input alone: those tokens' softmax alone
        chunks = [tokens[s] for s in row_chunks(len(tokens), C, CHUNK_LOGITS) if len(tokens)]
    for start in range(0, len(chunks), 2):  # two at a time: a chunk's (K, D + 1) each
        for part in parallel_map(chunk, chunks[start:start + 2]):
            if part is not None:
                dd.accumulate(*sums, *part)
    if failed:
        return None
    ordered = [d_input[start] for start in sorted(d_input)]
    input_parts = (tuple(np.concatenate([p[i] for p in ordered]) for i in range(3)) if ordered
                   else (np.empty((0, D)),) * 3)
    return input_parts, tuple(sums)


def _product(dd, G_hi, G_lo, eps, G_magnitude, B, B_magnitude, reuse=False, cheap=True,
             rest=ROUNDED_REST, dot=False, error=None):
    """(G_hi + G_lo) B as (hi, lo, absolute error bound), for G within eps |G| elementwise
    (eps broadcast along G's rows or columns), or within ``error`` elementwise where given
    (eps and G_magnitude then unused; ``reuse``: B is the layer's; ``cheap``, ``rest``,
    ``dot``: as ``_exact_sum``'s); None where the splitting does not apply."""
    inner = G_hi.shape[1]
    low = G_lo @ B  # |G_lo| <= u |G_hi|: its error gamma(K) |G_lo| |B| <= gamma(K) u |G| |B|
    if error is None:
        magnitude = ((eps + U * blas_gamma(inner)) * G_magnitude) @ B_magnitude
    else:
        magnitude = (error + U * blas_gamma(inner) * np.abs(G_hi)) @ B_magnitude
    magnitude *= 1 + 2 * blas_gamma(inner + 2)  # nonnegative terms: BLAS's rounding scales them
    return _exact_sum(dd, G_hi, B, low, magnitude, reuse, cheap, rest, dot)


def _known(dd, hi, lo, error, rows_only: bool) -> Known:
    ok = np.empty(hi.shape, dtype=bool)
    dd.certify_elements(hi, lo, error, ESTIMATE_ULPS, ok)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = hi.astype(np.longdouble) + lo
    if rows_only:
        ok = ok.all(axis=1)
    return Known(hi, exact, ok, {TIER: int(ok.sum())})
