"""cross_entropy's loss and gradient rounded to float64: a double-double tier.

Long double balls leave float64 results about 11 bits, and the softmax's chain spends most of
them: in a row of a thousand classes some element is always too close to a rounding boundary,
and the row fell to arb. Here the row's softmax gradient is computed in double-double
(``double_double.softmax_gradient_rows``: about 106 bits, one relative error bound for the
row, the sum of its chain's), and each element is certified as ``engine.certify`` would a ball
of that radius: strictly inside its rounding interval, within ESTIMATE_ULPS of an ulp.

It covers index targets, with or without label smoothing (``applies``). Per row the loss is
w_t ((m - x_t) + log E) (``double_double.softmax_loss_rows``: log E by one Newton step on the
exponential), and the total the rows' sum with their absolute error bounds, over W for 'mean';
the gradient is r (softmax - onehot(t)) with r = a w_t / (W E), a the upstream gradient, W the
'mean' divisor (an exact double-double from fsum), E the softmax's denominator (the largest
logit's term 1). Label smoothing e takes torch's (1 - e) w_t nlp_t + (e / C) sum_c w_c nlp_c
(``double_double.softmax_smoothed_loss_rows``) and its gradient from the kernel's of unit
weight (``double_double.smoothed_gradient_rows``), each element then within the row's bound
relative to its terms' sizes, which cancel where the softmax meets the smoothing's share.
Probability targets p (``soft_loss``, ``soft_gradients``: ``double_double.softmax_soft_rows``)
take u_c = w_c ((1 - e) p_c + e / C): the loss sum_c u_c nlp_c, d loss / d x_c =
h (Q softmax_c - u_c) with Q = sum_c u_c and h = a / divisor (bounded by its terms' sizes:
it cancels where the softmax meets the target), d loss / d p_c = h (1 - e) w_c nlp_c (no
cancellation), and d loss / d w_c, the sum over rows of h q_c nlp_c (absolute bounds: the
upstream's signs may differ by row); for results narrower than float64 the gradients come
with an absolute bound per element and ``compiled_kernels.certify_narrower`` rounds them
(the engine's float64 balls took 1.8 times as long). Rows it does not certify
(non-finite logits, logits spread beyond 650, values near underflow, an element within a 64th
of an ulp of a rounding boundary: about one in 2^30) are left to the engine's tiers
(``engine.Known``), and so is everything where numba does not import.
"""

from __future__ import annotations

import math

import numpy as np

from .compiled_kernels import (TIER, certify_narrower, exact_divisor, kernels, known, known_in,
                               known_total)
from .engine import ESTIMATE_ULPS, Known, parallel_map, row_chunks
from .formats import FORMATS, Format

CHUNK_ELEMENTS = 1 << 16  # logits per chunk of rows (a task for one thread)
NO_LO = np.empty((0, 0))  # the kernels' lo parts of the logits: float64 logits have none


def applies(rows, fmt: Format) -> bool:
    """Whether this tier's losses cover the call: float64 results, rows with classes, and
    numba here (index targets: ``loss``; probability targets: ``soft_loss``; the gradients:
    ``gradient_applies``)."""
    return (fmt == FORMATS["float64"]
            and rows.x.shape[0] > 0 and rows.x.shape[1] > 0 and kernels() is not None)


def gradient_factors(rows, a: np.ndarray, reduction: str) -> tuple:
    """(w_t per row, 0 where ignored; the divisor as a double-double, 1 but for 'mean'; the
    rows whose gradient is exactly 0) of the softmax gradient r (softmax - onehot(t)),
    r = a w_t / (W E): a zero factor, or one class (softmax 1, rest 0), the factors finite."""
    w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
    divisor = exact_divisor(w_t) if reduction == "mean" else (1.0, 0.0)
    finite_factors = np.isfinite(a) & np.isfinite(w_t) & math.isfinite(divisor[0])
    zero = ((a == 0) | (w_t == 0) | (rows.weight.size == 1)) & finite_factors
    return w_t, divisor, zero


def gradient_applies(rows) -> bool:
    """Whether ``gradient`` and ``soft_gradients`` cover the call, whatever the format: rows
    with classes, and numba here (the double-double gradient beat float64 balls for float32
    results too: 0.031 s against 0.049 at the speed ladder's third rung, with smoothing 0.056
    against 0.088)."""
    return rows.x.shape[0] > 0 and rows.x.shape[1] > 0 and kernels() is not None


def gradient(rows, st, a: np.ndarray, reduction: str, smoothing: float = 0.0,
             fmt: Format = FORMATS["float64"]) -> Known:
    """d loss / d x (M, C) rounded to ``fmt``, ``a`` the upstream gradient per row (0 where
    the row is ignored), label smoothing ``smoothing``: Known, ok per row where every element
    of the row is certified (for float64 by the kernels, else each element's double-double
    ball by ``engine.certify``)."""
    dd = kernels()
    M, C = rows.x.shape
    w_t, divisor, zero = gradient_factors(rows, a, reduction)
    smoothing = smoothing if C > 1 else 0.0  # one class: 0 either way (S = w_t, softmax 1)
    if smoothing:  # the kernel's gradient of unit weight, smoothed after
        kernel_w, zero = np.where(rows.valid, 1.0, 0.0), a == 0
        weight_sum = exact_divisor(rows.weight)
    else:
        kernel_w = w_t
    finite = ~st.undefined & (st.finite == 1).all(axis=1)
    rounded, exact = np.empty((M, C)), np.empty((M, C), dtype=np.longdouble)
    ok = np.zeros(M, dtype=bool)
    k = st.k

    wide = fmt == FORMATS["float64"]

    def chunk(c: slice):
        n = c.stop - c.start
        hi, lo, eps = rounded[c], np.empty((n, C)), np.empty(n)
        # with smoothing, or for a narrower format, the kernel certifies nothing
        # (estimate_ulps 0): G is certified below
        dd.softmax_gradient_rows(st.xs[c], NO_LO, np.zeros(n), k[c], rows.t[c], a[c],
                                 kernel_w[c], *divisor, zero[c],
                                 ESTIMATE_ULPS if wide and not smoothing else 0.0,
                                 *dd.exp_constants(), hi, lo, eps, ok[c])
        with np.errstate(invalid="ignore", over="ignore"):  # rows left hold anything
            if smoothing:
                error = _smoothed(dd, rows, c, hi, lo, eps, a, w_t, divisor, smoothing,
                                  weight_sum)
            elif not wide:
                error = np.where(np.isfinite(eps)[:, None], eps[:, None] * np.abs(hi), np.inf)
            exact[c] = hi.astype(np.longdouble) + lo
        if wide and smoothing:
            certified = np.empty(hi.shape, dtype=bool)
            dd.certify_elements(hi, lo, error, ESTIMATE_ULPS, certified)
            ok[c] = certified.all(axis=1)
        elif not wide:  # each element's double-double, rounded to the format
            rounded[c], certified = certify_narrower(hi, lo, error, fmt)
            ok[c] = certified.all(axis=1)
        ok[c] &= finite[c]

    parallel_map(chunk, row_chunks(M, C, CHUNK_ELEMENTS))
    return Known(rounded, exact, ok, {TIER: int(ok.sum())})


def _smoothed(dd, rows, c: slice, hi, lo, eps, a, w_t, divisor, smoothing: float,
              weight_sum) -> np.ndarray:
    """Label smoothing's gradient of the rows ``c``, in place from the kernel's of unit weight
    (``double_double.smoothed_gradient_rows``), and each element's absolute error bound: eps
    times its terms' sizes (inf on rows left)."""
    magnitude = np.zeros(hi.shape)
    dd.smoothed_gradient_rows(hi, lo, eps, rows.t[c], a[c], w_t[c], *divisor, smoothing,
                              len(rows.weight), *weight_sum, rows.weight, magnitude)
    bounded = np.isfinite(eps)
    with np.errstate(invalid="ignore", over="ignore"):  # rows left: no bound
        return np.where(bounded[:, None], eps[:, None] * magnitude, np.inf)


def loss(rows, st, reduction: str, smoothing: float = 0.0) -> Known:
    """The loss rounded to float64: per row ('none', ok per row) or the total ('sum', 'mean':
    one element, ok where certified), as Known for the engine to complete.

    Per row w_t ((m - x_t) + log E) (``double_double.softmax_loss_rows``, log E by one Newton
    step on an exponential), with label smoothing (1 - e) w_t nlp_t + (e / C) sum_c w_c nlp_c
    (``double_double.softmax_smoothed_loss_rows``); the total adds the rows' double-doubles
    and their absolute error bounds, then divides by W (an exact double-double)."""
    dd = kernels()
    M, C = rows.x.shape
    w_t = np.where(rows.valid, rows.weight[rows.t], 0.0)
    finite = ~st.undefined & (st.finite == 1).all(axis=1) & np.isfinite(w_t)
    hi, lo, error = np.empty(M), np.empty(M), np.empty(M)
    ok = np.zeros(M, dtype=bool)
    k = st.k
    if smoothing:
        weights = (rows.valid, rows.weight, smoothing, *exact_divisor(rows.weight))

    def chunk(c: slice):
        n = c.stop - c.start
        common = (st.xs[c], NO_LO, np.zeros(n), k[c], rows.t[c], w_t[c])
        outputs = (ESTIMATE_ULPS, *dd.exp_constants(), hi[c], lo[c], error[c], ok[c])
        if smoothing:
            dd.softmax_smoothed_loss_rows(*common, weights[0][c], *weights[1:], *outputs)
        else:
            dd.softmax_loss_rows(*common, *outputs)

    parallel_map(chunk, row_chunks(M, C, CHUNK_ELEMENTS))
    ok &= finite
    if reduction == "none":
        return known(hi, lo, ok)
    return known_total(hi, lo, np.where(finite, error, np.inf),
                       exact_divisor(w_t) if reduction == "mean" else None)


def soft_loss(rows, st, reduction: str, smoothing: float) -> Known:
    """The loss with probability targets rounded to float64, as ``loss``: per row sum_c w_c
    q_c nlp_c, q = (1 - e) p + e / C (``double_double.softmax_soft_rows``), the 'mean' over
    the rows."""
    (hi, lo, error, ok), _, _, _ = _soft_rows(rows, st, smoothing, 1.0, None)
    if reduction == "none":
        return known(hi, lo, ok)
    return known_total(hi, lo, error, (float(len(hi)), 0.0) if reduction == "mean" else None)


def soft_gradients(rows, st, a: np.ndarray, reduction: str, smoothing: float,
                   weight_gradient: bool = False, fmt: Format = FORMATS["float64"]) -> tuple:
    """(d loss / d x, d loss / d target (M, C), d loss / d weight (C,) or None) with
    probability targets rounded to ``fmt``, for the upstream gradient per row ``a`` (before
    the mean's division): Known each, ok per row where every element of the row is certified
    (per element for the weight's, the sum over rows of h q_c nlp_c, only where
    ``weight_gradient``): by the kernel for float64, else from each element's bound."""
    divisor = float(rows.x.shape[0]) if reduction == "mean" else 1.0
    wide = fmt == FORMATS["float64"]
    _, d_input, d_target, parts = _soft_rows(rows, st, smoothing, divisor, a, weight_gradient,
                                             bounds=not wide)
    if wide:
        inputs = tuple(Known(hi, _exact(hi, lo), ok, {TIER: int(ok.sum())})
                       for hi, lo, ok, _ in (d_input, d_target))
    else:
        inputs = tuple(_per_row(known_in(hi, lo, error, None, fmt))
                       for hi, lo, _, error in (d_input, d_target))
    return inputs + ((_column_totals(*parts, fmt) if weight_gradient else None),)


def _per_row(elements: Known) -> Known:
    """``elements`` (ok per element) with ok per row: every element of the row certified."""
    ok = elements.ok.all(axis=1)
    return Known(elements.rounded, elements.exact, ok, {TIER: int(ok.sum())})


def _column_totals(hi, lo, error, fmt: Format = FORMATS["float64"]) -> Known:
    """The columns' sums of rows' parts hi + lo, each within ``error``, rounded to ``fmt`` and
    certified per column: each chunk of rows summed on the reference's threads, then the
    chunks' sums."""
    dd = kernels()
    M, C = hi.shape
    chunks = row_chunks(M, C, CHUNK_ELEMENTS)

    def chunk(c: slice):
        sums = np.empty(C), np.empty(C), np.empty(C)
        dd.column_sums(hi[c], lo[c], error[c], *sums)
        return sums

    parts = [np.stack(part) for part in zip(*parallel_map(chunk, chunks))]
    totals = np.empty((1, C)), np.empty((1, C)), np.empty((1, C))
    dd.column_sums(*parts, *(t[0] for t in totals))
    if fmt != FORMATS["float64"]:
        return known_in(*(t[0] for t in totals), None, fmt)
    ok = np.empty((1, C), dtype=bool)
    dd.certify_elements(*totals, ESTIMATE_ULPS, ok)
    return Known(totals[0][0], _exact(totals[0][0], totals[1][0]), ok[0], {TIER: int(ok.sum())})


def _soft_rows(rows, st, smoothing: float, divisor: float, a, weight_parts=False,
               bounds=False) -> tuple:
    """``double_double.softmax_soft_rows`` by chunks of rows on the reference's threads:
    ((loss hi, lo, error, ok), (d input hi, lo, ok, error), (d target hi, lo, ok, error),
    (the weight's parts per row hi, lo, error)), the gradients only where ``a`` is given,
    their absolute error bounds only where ``bounds`` (the kernel then certifies nothing) and
    the weight's parts only where ``weight_parts`` (else empty); rows with a non-finite logit
    are left."""
    dd = kernels()
    M, C = rows.x.shape
    gradients = a is not None
    shape = (M, C) if gradients else (0, 0)
    loss = (np.empty(M), np.empty(M), np.empty(M), np.zeros(M, dtype=bool))
    d_input, d_target = ((np.empty(shape), np.empty(shape), np.zeros(shape[0], dtype=bool),
                          np.empty(shape if bounds else (0, 0))) for _ in range(2))
    parts = tuple(np.empty((M, C) if weight_parts else (0, 0)) for _ in range(3))
    p = np.ascontiguousarray(rows.target, dtype=np.float64)
    weight = np.ascontiguousarray(rows.weight, dtype=np.float64)
    a = np.zeros(M) if a is None else np.ascontiguousarray(a, dtype=np.float64)

    def chunk(c: slice):
        x = st.xs[c]  # float64 logits: no lo parts, exact
        dd.softmax_soft_rows((x, np.empty((0, C)), np.zeros(len(x))), st.k[c], p[c], weight,
                             smoothing, divisor, a[c], gradients,
                             0.0 if bounds else ESTIMATE_ULPS, *dd.exp_constants(),
                             *(v[c] for v in loss), *_outputs(d_input, c),
                             *_outputs(d_target, c), *(v[c] for v in parts))

    parallel_map(chunk, row_chunks(M, C, CHUNK_ELEMENTS))
    finite = ~st.undefined & (st.finite == 1).all(axis=1)
    loss[3][:] &= finite
    loss[2][~finite] = np.inf
    if gradients:
        for hi, lo, ok, error in (d_input, d_target):
            ok[:] &= finite
            if bounds:
                error[~finite] = np.inf
    if weight_parts:
        parts[2][~finite] = np.inf
    return loss, d_input, d_target, parts


def _outputs(gradient: tuple, c: slice) -> tuple:
    """The kernel's (hi, lo, error, ok) arguments for the rows ``c`` of a gradient's (hi, lo,
    ok, error), its error empty where it has no bounds."""
    hi, lo, ok, error = gradient
    return hi[c], lo[c], (error[c] if error.size else error), ok[c]


def _exact(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """hi + lo in long double (the estimate ``engine.Known`` carries)."""
    with np.errstate(invalid="ignore", over="ignore"):  # rows left hold anything
        return hi.astype(np.longdouble) + lo
