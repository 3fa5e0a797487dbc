"""The logistic losses rounded to float64: a double-double tier for
binary_cross_entropy_with_logits and multilabel_soft_margin_loss, values and gradients, and
binary_cross_entropy's values and gradients (``bce_loss``: y log p + (1 - y) log(1 - p), long
double balls at 4e6 elements/s, 0.6 % of them to arb; ``bce_slopes``: (p - y) / (p (1 - p)) has a
relative bound, log(1 - p) - log p cancels near 1/2; long double balls left 7 % of them to arb).

Both are sums of w ((1 - y) softplus(x) + q y softplus(-x)) (q: pos_weight, 1 for the multi-
label loss), with slopes w ((1 - y) sigmoid(x) - q y sigmoid(-x)), which cancel wherever
sigmoid(x) is near y, and w ((q - 1) softplus(-x) - x) in y (-w x for q = 1), which cancels at
its root (long double balls and arb took it at 1e6 input elements/s with a pos_weight). Long
double balls certified float64 results at
2.4-4.4e6 input elements/s (the slopes' cancellation sent 0.6 % to arb). Here each element is a
double-double with an absolute bound (``double_double.logistic_terms``, from one exponential
exp(-|x|)); a row of the multi-label loss, or a total, adds the elements and their bounds.
Elements it leaves (|x| above 650, where the exponential leaves its domain; infinities; within
a 64th of an ulp of a rounding boundary) go to the engine (``engine.Known``), and so does
everything where numba does not import.
"""

from __future__ import annotations

import numpy as np

from .compiled_kernels import (by_chunks, flat_arrays, for_float64_elements, kernels,
                               known, known_reduced, known_total)
from .engine import ESTIMATE_ULPS, Known

LOSS, SLOPE, TARGET_SLOPE = 0, 1, 2  # what ``double_double.logistic_terms`` computes


applies = for_float64_elements  # float64 results, some elements, numba here


def _terms(x, y, q, w, g, count, what: int, estimate_ulps: float):
    """``logistic_terms`` over the broadcast elements, flattened: (hi, lo, error, ok)."""
    dd = kernels()
    x, y, q, w, g = flat_arrays(x, y, q, w, g)
    return by_chunks(x.size, lambda c, *out: dd.logistic_terms(
        x[c], y[c], q[c], w[c], g[c], float(count), what, estimate_ulps, *dd.exp_constants(),
        *out))


def elements(x, y, q, w, g, count: int, what: int) -> Known:
    """w g / count times the loss (LOSS), its slope in x (SLOPE) or in y ((q - 1)
    softplus(-x) - x, TARGET_SLOPE) of each element, flattened: Known, ok per element."""
    hi, lo, _, ok = _terms(x, y, q, w, g, count, what, ESTIMATE_ULPS)
    return known(hi, lo, ok)


def total(x, y, q, w, divisor: int | None) -> Known:
    """The sum of w times each element's loss, over ``divisor`` unless None: Known, one
    element."""
    hi, lo, error, _ = _terms(x, y, q, w, 1.0, 1, LOSS, 0.0)
    return known_total(hi, lo, error, None if divisor is None else (float(divisor), 0.0))


def row_means(x, y, w) -> Known:
    """Each row's mean over its classes (the last axis) of w times the loss (q = 1), rows of
    x (n, C): Known, ok per row."""
    dd = kernels()
    n, classes = x.shape
    hi, lo, error, _ = _terms(x, y, 1.0, w, 1.0, classes, LOSS, 0.0)
    rows = [np.empty((n, 1)) for _ in range(3)]
    dd.row_sums(*(a.reshape(n, classes) for a in (hi, lo, error)), *(r[:, 0] for r in rows))
    ok = np.zeros((n, 1), dtype=bool)
    dd.certify_elements(*rows, ESTIMATE_ULPS, ok)
    return known(rows[0][:, 0], rows[1][:, 0], ok[:, 0])


def column_means(x, y, g, scale: int) -> Known:
    """Per class (the last axis of x), the sum over the rows of g times the loss (q = 1, w =
    1) over ``scale``: the class weight's gradient of multilabel_soft_margin_loss (its sums'
    bounds by ``double_double.column_sums``); Known, ok per class."""
    dd = kernels()
    classes = np.shape(x)[-1]
    hi, lo, error, _ = _terms(x, y, 1.0, 1.0, g, scale, LOSS, 0.0)
    sums = [np.empty(classes) for _ in range(3)]
    dd.column_sums(*(a.reshape(-1, classes) for a in (hi, lo, error)), *sums)
    ok = np.zeros((1, classes), dtype=bool)
    dd.certify_elements(*(a.reshape(1, classes) for a in sums), ESTIMATE_ULPS, ok)
    return known(sums[0], sums[1], ok[0])


def bce_loss(p, y, w, reduction: str, clamp_below: float, log_clamp: float) -> Known:
    """binary_cross_entropy's loss -w (y L(p) + (1 - y) L(1 - p)), each log L clamped at
    ``log_clamp`` (for p <= ``clamp_below``, and at p = 1: the caller's exact decisions): per
    element, flattened, for 'none' (ok per element), else the total, over the element count
    for 'mean' (``double_double.bce_losses``)."""
    dd = kernels()
    p, y, w = flat_arrays(p, y, w)
    estimate_ulps = ESTIMATE_ULPS if reduction == "none" else 0.0
    hi, lo, error, ok = by_chunks(p.size, lambda c, *out: dd.bce_losses(
        p[c], y[c], w[c], clamp_below, log_clamp, estimate_ulps, *dd.exp_constants(), *out))
    return known_reduced(hi, lo, error, ok, reduction, p.size)


def bce_slopes(p, y, clamp, w, g, count: int, epsilon: float, wrt: str) -> Known:
    """binary_cross_entropy's slope times w g / count, in its input ((p - y) / max(p (1 - p),
    epsilon), ``clamp`` where the max is epsilon, decided exactly by the caller) or its target
    (log(1 - p) - log p), per element, flattened: Known, ok per element (``double_double.
    bce_slopes``; p at 0 or 1 is left)."""
    dd = kernels()
    p, y, clamp, w, g = flat_arrays(p, y, clamp, w, g)
    what = 1 if wrt == "input" else 2
    hi, lo, _, ok = by_chunks(p.size, lambda c, *out: dd.bce_slopes(
        p[c], y[c], clamp[c], w[c], g[c], float(count), epsilon, what, ESTIMATE_ULPS,
        *dd.exp_constants(), *out))
    return known(hi, lo, ok)
