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
  products (LOSS_REST) and adds their parts row by row inside its kernel
  (``softmax_loss_parts``); the few tokens it leaves take Dot2 (``double_double.dot_rows``);
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

It covers what ``linear_fast`` covers (a 2-D weight, index targets, no label smoothing) for
float64 results, where ``split_product`` applies and numba imports (``applies``); whatever it
leaves the engine's tiers compute. For narrower results it is ``linear_fast``'s second tier
(``refine``): the outputs whose sums cancel below the first tier's bound, from every row's
double-double softmax and the products of those rows and classes alone.
"""

from __future__ import annotations

import math

import numpy as np

from .balls import Ball
from .classification import upstream_rows, weights_counted
from .classification_fast import gradient_factors
from .compiled_kernels import TIER, exact_divisor, kernels, known, known_total
from .engine import ESTIMATE_ULPS, Known, parallel_map, row_chunks
from .formats import FORMATS, Format
from .split_product import slice_bits, split_product

CHUNK_LOGITS = 1 << 21  # logits per chunk of tokens, as linear's: a class's products amortised
U = 2.0 ** -53
ROUNDED_REST = 2.0 ** -80  # the rounded rest's bound of a cheap product, of the operands' norms
# a loss, a sum of logits that does not cancel (``double_double.softmax_loss_rows``), needs its
# logits within about 2^-59 of its value: at this share of the norms, any loss above 2^-5 of
# them; one exact level up to 2^11 terms, where ROUNDED_REST took two
LOSS_REST = 2.0 ** -64
# up to this many tokens left by the first pass take ``double_double.dot_rows`` (0.3 ms a token
# at 4096 x 64); more take exact products, whose split of the weight cost about 30 tokens' worth
DOT_TOKENS = 32


def applies(call, smoothing: float, fmt: Format) -> bool:
    """Whether this tier covers the call: float64 results of a 2-D weight with index targets
    and no label smoothing, tokens and classes to compute, and numba here."""
    return (fmt == FORMATS["float64"] and not call.spatial and not call.rows.soft
            and smoothing == 0 and call.row_count > 0 and call.classes > 0
            and call.x.shape[1] > 0 and kernels() is not None)


def _gamma(n: int) -> float:
    return n * U / (1 - n * U)


def levels(inner: int, rest: float = ROUNDED_REST) -> int:
    """``split_product``'s exact levels for a cheap product over ``inner`` terms: the fewest
    whose rounded rest, about gamma(inner) sqrt(inner) 2^(-beta s) of the operands' norms, is
    below ``rest`` (for ROUNDED_REST, 2 for up to 512 terms, 3 for 1024 to 131072). A
    gradient is then left to the exact products (the second pass) only where its sum cancels
    by 20 binades or so; a loss (LOSS_REST) where it lies below 2^-5 of its logits' norms."""
    beta, scale = slice_bits(inner), _gamma(inner + 8) * math.sqrt(inner)
    s = 1
    while scale * 2.0 ** (-beta * s) > rest:
        s += 1
    return s


def _exact_sum(dd, a, b, extra=None, extra_error=None, reuse=False, cheap=True,
               rest=ROUNDED_REST):
    """a @ b (2-D float64) as a double-double with an absolute error bound per element, from
    ``split_product``'s parts (``reuse``: b is the layer's, split once; ``cheap``: with
    ``levels(inner, rest)``, else every part exact); ``extra`` (n, m) is added, within
    ``extra_error``. None where the splitting does not apply."""
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


def _bias(call) -> np.ndarray:
    """The bias as ``double_double.sum_parts``' extra: (1, C), or (0, C) where it is zero."""
    return call.b_rows.reshape(1, -1)[:int(call.b_rows.any())]


def _logits(dd, call, Wt, c, cheap=True, rest=ROUNDED_REST):
    """(z_hi, z_lo, error per row, k) of the tokens ``c`` (a slice or indices; Wt: the
    weight's transpose, the same array object for every chunk, so that it is split once;
    ``cheap``, ``rest``: as ``_exact_sum``'s), or None."""
    exact = _exact_sum(dd, call.x[c], Wt, _bias(call), reuse=True, cheap=cheap,
                       rest=rest)
    if exact is None:
        return None
    hi, lo, error = exact
    return hi, lo, error.max(axis=1), np.argmax(hi, axis=1)


def loss(call, reduction: str) -> Known | None:
    """The loss rounded to float64 as Known: per token ('none', ok per token) or the total
    (one element); None where ``split_product`` does not apply."""
    dd = kernels()
    M, t, w_t = call.row_count, call.rows.t, weights_counted(call.rows)
    hi, lo, error = np.empty(M), np.empty(M), np.empty(M)
    ok = np.zeros(M, dtype=bool)
    Wt = call.W_rows.T

    def rows(c, cheap=True) -> bool:
        x = call.x[c]
        split = split_product(x, Wt, reuse=True,
                              exact_levels=levels(x.shape[1], LOSS_REST) if cheap else None)
        if split is None:
            return False
        parts, bound = split
        n = x.shape[0]
        out = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
        dd.softmax_loss_parts(np.asarray(parts), _bias(call),
                              np.broadcast_to(0.0, (n, call.classes)),
                              np.broadcast_to(bound, (n, call.classes)), t[c], w_t[c],
                              ESTIMATE_ULPS, *dd.exp_constants(), *out)
        hi[c], lo[c], error[c], ok[c] = out
        return True

    def exact_rows(tokens):  # a few tokens' logits by Dot2: no split of the weight
        n, C = len(tokens), call.classes
        z_hi, z_lo, z_error = np.empty((n, C)), np.empty((n, C)), np.empty((n, C))
        dd.dot_rows(call.x[tokens], np.ascontiguousarray(Wt), call.b_rows, z_hi, z_lo, z_error)
        out = [np.empty(n) for _ in range(3)] + [np.empty(n, dtype=bool)]
        dd.softmax_loss_rows(z_hi, z_lo, z_error.max(axis=1), np.argmax(z_hi, axis=1),
                             t[tokens], w_t[tokens], ESTIMATE_ULPS, *dd.exp_constants(), *out)
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


def gradients(call, reduction: str) -> tuple[Known, Known] | None:
    """d loss / d input (ok per token) and d loss / d [W, b] (C, D + 1; ok per element)
    rounded to float64, as Known; None where ``split_product`` does not apply."""
    parts = gradient_parts(call, reduction, np.arange(call.row_count),
                           np.arange(call.classes))
    if parts is None:
        return None
    dd = kernels()
    d_input, layer = _known(dd, *parts[0], rows_only=True), _known(dd, *parts[1], rows_only=False)
    # what the cheap products' rest leaves (sums that cancel), from exact products
    tokens, classes = np.flatnonzero(~d_input.ok), np.flatnonzero(~layer.ok.all(axis=1))
    if not (len(tokens) or len(classes)):
        return d_input, layer
    again = gradient_parts(call, reduction, tokens, classes, cheap=False)
    if again is None:
        return d_input, layer
    for done, redone, where in zip(parts, again, (tokens, classes)):
        for array, rows in zip(done, redone):
            array[where] = rows
    return _known(dd, *parts[0], rows_only=True), _known(dd, *parts[1], rows_only=False)


def refine(call, reduction: str, tokens: np.ndarray, classes: np.ndarray):
    """A later tier for results narrower than float64 (``linear_fast.gradients``): d loss / d
    input at the rows ``tokens`` and d loss / d [W, b] at the rows ``classes`` as float64
    balls (the double-double's hi part, its lo part and error bound as the radius); None where
    this tier does not apply. Every row's softmax is needed (each r_t sums a whole row), but
    only the products of those rows and columns."""
    if kernels() is None or call.spatial or call.rows.soft:
        return None
    parts = gradient_parts(call, reduction, tokens, classes, rest=LOSS_REST, quick=True)
    if parts is None:
        return None
    return tuple(Ball(hi, np.abs(lo) + error) if len(hi) else None for hi, lo, error in parts)


def gradient_parts(call, reduction: str, tokens: np.ndarray, classes: np.ndarray,
                   cheap: bool = True, rest: float = ROUNDED_REST, quick: bool = False):
    """((hi, lo, error) of d loss / d input at the rows ``tokens`` (sorted), (hi, lo, error) of
    d loss / d [W, b] at the rows ``classes``): double-doubles and their absolute error
    bounds, elementwise; None where ``split_product`` does not apply. ``cheap``: the products
    (the logits, and by G) with ``levels(inner, rest)`` exact, else all exact; ``quick``: the
    softmax's exponentials by ``quick_exp`` (both for what needs 60-odd bits, not 106)."""
    dd = kernels()
    rows = call.rows
    M, C, D = call.row_count, call.classes, call.x.shape[1]
    a = np.where(rows.valid, upstream_rows(call.grad_output, rows, reduction), 0.0)
    w_t, divisor, zero = gradient_factors(rows, a, reduction)
    W, Wt, x_one = call.W_rows, call.W_rows.T, np.concatenate([call.x, np.ones((M, 1))], axis=1)
    W_magnitude, x_magnitude = np.abs(W), np.abs(x_one)
    every_class = len(classes) == C
    d_input = {}
    K = len(classes)
    sums = [np.zeros((K, D + 1)), np.zeros((K, D + 1)), np.zeros((K, D + 1))]
    failed = []

    def chunk(c):
        logits = _logits(dd, call, Wt, c, cheap, rest)
        if logits is None:
            failed.append(c)
            return None
        z_hi, z_lo, z_error, k = logits
        n = len(k)
        G_hi, G_lo, eps = np.empty((n, C)), np.empty((n, C)), np.empty(n)
        dd.softmax_gradient_rows(z_hi, z_lo, z_error, k, rows.t[c], a[c], w_t[c], *divisor,
                                 zero[c], 0.0, *dd.exp_constants(), G_hi, G_lo, eps,
                                 np.empty(n, dtype=bool), quick)  # G's bounds: certify nothing
        left = ~np.isfinite(eps)  # rows the kernel left hold anything: zeros, bounded inf
        G_hi[left], G_lo[left], eps[left] = 0.0, 0.0, 0.0
        if isinstance(c, slice):
            first, mine = c.start, tokens[(tokens >= c.start) & (tokens < c.stop)] - c.start
        else:  # the tokens' own rows
            first, mine = c[0], np.arange(n)
        if len(mine):
            d_x = _product(dd, G_hi[mine], G_lo[mine], eps[mine, None], np.abs(G_hi[mine]), W,
                           W_magnitude, reuse=True, cheap=cheap, rest=rest)
            if d_x is None:
                failed.append(c)
                return None
            d_x[2][left[mine]] = np.inf
            d_input[first] = d_x
        if not K:
            return None
        if not every_class:
            G_hi, G_lo = G_hi[:, classes], G_lo[:, classes]
        layer = _product(dd, G_hi.T, G_lo.T, eps[None, :], np.abs(G_hi).T, x_one[c],
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
             rest=ROUNDED_REST):
    """(G_hi + G_lo) B as (hi, lo, absolute error bound), for G within eps |G| elementwise
    (eps broadcast along G's rows or columns; ``reuse``: B is the layer's; ``cheap``, ``rest``:
    as ``_exact_sum``'s); None where the splitting does not apply."""
    inner = G_hi.shape[1]
    low = G_lo @ B  # |G_lo| <= u |G_hi|: its error gamma(K) |G_lo| |B| <= gamma(K) u |G| |B|
    magnitude = ((eps + U * _gamma(inner)) * G_magnitude) @ B_magnitude
    magnitude *= 1 + 2 * _gamma(inner + 2)  # nonnegative terms: BLAS's rounding scales them
    return _exact_sum(dd, G_hi, B, low, magnitude, reuse, cheap, rest)


def _known(dd, hi, lo, error, rows_only: bool) -> Known:
    ok = np.empty(hi.shape, dtype=bool)
    dd.certify_elements(hi, lo, error, ESTIMATE_ULPS, ok)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = hi.astype(np.longdouble) + lo
    if rows_only:
        ok = ok.all(axis=1)
    return Known(hi, exact, ok, {TIER: int(ok.sum())})
