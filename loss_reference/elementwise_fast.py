"""Elementwise gradients that are products of the inputs, rounded to float64: a double-double
tier for slopes of the form (u - v) f g / count (a difference of two inputs, or a sign, times
factors: margin_ranking_loss's gradients, multi_margin_loss's for p = 1), and the pointwise
family's terms and slopes (l1, mse, huber, smooth_l1: ``pointwise_terms``), whose z = x - y
is exact, so every branch is decided exactly and every bound is relative.

Long double balls certify them, but at 3e6 input elements/s for float64 results: a ball's
midpoint and radius through every operation, in numpy's long double (the x87 format, no
vector instructions). Here u - v is exact (TwoSum) and the products and the quotient carry one
relative bound (``double_double.scaled_differences``): every element but exact ties is
certified. Elements it leaves go to the engine (``engine.Known``), and so does everything where
numba does not import.
"""

from __future__ import annotations

import numpy as np

from .compiled_kernels import (CHUNK_ELEMENTS, by_chunks, flat_arrays, for_float64_elements,
                               kernels, known, known_in, known_reduced, known_total)
from .engine import ESTIMATE_ULPS, Known, parallel_map, row_chunks
from .formats import FORMATS, Format


applies = for_float64_elements  # float64 results, some elements, numba here


def scaled_differences(u, v, f, g, count: int) -> Known:
    """(u - v) f g / count per element (broadcast, flattened): Known, ok per element."""
    hi, lo, _, ok = _scaled_differences(u, v, f, g, count)
    return known(hi, lo, ok)


def differences_total(u, v, f, divisor: int | None) -> Known:
    """The sum of (u - v) f over the elements, over ``divisor`` unless None: Known, one
    element."""
    hi, lo, error, _ = _scaled_differences(u, v, f, 1.0, 1)
    return known_total(hi, lo, error, None if divisor is None else (float(divisor), 0.0))


def _scaled_differences(u, v, f, g, count: int) -> tuple:
    dd = kernels()
    u, v, f, g = flat_arrays(u, v, f, g)
    return by_chunks(u.size, lambda c, *out: dd.scaled_differences(
        u[c], v[c], f[c], g[c], float(count), ESTIMATE_ULPS, *out))


def squared_hinge_slopes(x, x_label, active, margin: float, f, g, count: int) -> tuple:
    """multi_margin_loss's slopes for p = 2 (rows x (n, C); x_label, f = w[y] and g per row):
    (off, on) as Known, 2 f g h / count at each active hinge h = m - x_label + x (0
    elsewhere; flattened, ok per element) and the target's -2 f g (sum of the row's hinges) /
    count (ok per row) (``double_double.squared_hinge_slopes``: each hinge exact)."""
    dd = kernels()
    n, C = x.shape
    x, active = (np.ascontiguousarray(a, dtype=np.float64) for a in (x, active))
    x_label, f, g = (np.ascontiguousarray(np.broadcast_to(np.asarray(a, np.float64).reshape(-1),
                                                          (n,))) for a in (x_label, f, g))
    out = [np.empty((n, C)), np.empty((n, C)), np.zeros((n, C), dtype=bool),
           np.empty(n), np.empty(n), np.zeros(n, dtype=bool)]

    def chunk(c: slice):
        dd.squared_hinge_slopes(x[c], x_label[c], active[c], float(margin), f[c], g[c],
                                float(count), ESTIMATE_ULPS, *(o[c] for o in out))

    parallel_map(chunk, row_chunks(n, C, CHUNK_ELEMENTS))
    return known(*(o.reshape(-1) for o in out[:3])), known(*out[3:])


def ranking_loss(x1, x2, y, margin: float, reduction: str) -> tuple:
    """(Known, active) of margin_ranking_loss's terms max(0, m - y (x1 - x2)) (broadcast,
    flattened): the elements for 'none', else their total (over the count for 'mean');
    ``active``: 1.0 where m - y (x1 - x2) > 0, 0.0 where not, NaN where the kernel left its
    sign (``double_double.ranking_terms``: for y = +-1 the sum is exact, so it decides every
    sign and certifies ties as their own rounding)."""
    dd = kernels()
    x1, x2, y = flat_arrays(x1, x2, y)
    hi, lo, error, ok = by_chunks(x1.size, lambda c, *out: dd.ranking_terms(
        x1[c], x2[c], y[c], float(margin), ESTIMATE_ULPS, *out))
    active = np.where(np.isfinite(error), (hi > 0).astype(np.float64), np.nan)
    return known_reduced(hi, lo, error, ok, reduction, x1.size), active


POINTWISE = ("l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss")


def pointwise_applies(name: str, threshold: float, x, fmt=FORMATS["float64"]) -> bool:
    """Whether ``pointwise_terms`` covers the call: l1, mse, huber or smooth_l1 (a threshold
    of 0 or a normal float64, so that halving it is exact), float64 results (the default:
    whether the kernel covers the inputs), numba here."""
    return (name in POINTWISE and (threshold == 0 or 2.0 ** -900 <= threshold <= 2.0 ** 400)
            and applies(x, fmt))


def pointwise_terms(name: str, threshold: float, x, y, w, g, slope: bool,
                    divisor: tuple = (1.0, 0.0)):
    """(hi, lo, error, ok) per element (broadcast, flattened): the loss's term (or, where
    ``slope``, its derivative in x) times w g / divisor, a double-double (hi, lo) within u^2
    of the exact divisor (``double_double.pointwise_terms``)."""
    dd = kernels()
    kind = dd.POINTWISE_KINDS["l1_loss" if threshold == 0 and name == "smooth_l1_loss"
                              else name]
    x, y, w, g = flat_arrays(x, y, w, g)
    return by_chunks(x.size, lambda c, *out: dd.pointwise_terms(
        x[c], y[c], w[c], g[c], kind, float(threshold), slope, *divisor, ESTIMATE_ULPS, *out))


def pointwise_gradient(name: str, threshold: float, x, y, w, g, divisor: tuple) -> Known:
    """The slopes in x times w g / divisor per element (flattened): Known, ok per element."""
    hi, lo, _, ok = pointwise_terms(name, threshold, x, y, w, g, True, divisor)
    return known(hi, lo, ok)


def pointwise_weight_gradient(name: str, threshold: float, x, y, w, g, divisor: tuple,
                              by_weight_sum: bool, fmt: Format) -> Known:
    """The slopes in the weights per element (flattened; Known, ok per element), rounded to
    ``fmt`` (``known_in``): g t / divisor, t each term, or for a mean over the weights' sum
    W (``divisor``), g (t W - A) / W^2 with A = sum w t (``double_double.
    weighted_mean_slopes``: t W - A cancels where t is the mean; A's bound that of its
    sum)."""
    if not by_weight_sum:
        return known_in(*pointwise_terms(name, threshold, x, y, 1.0, g, False, divisor), fmt)
    dd = kernels()
    t_hi, t_lo, t_error, _ = pointwise_terms(name, threshold, x, y, 1.0, 1.0, False)
    total = dd.sum_with_error(*pointwise_terms(name, threshold, x, y, w, 1.0, False)[:3])
    g = flat_arrays(g, x)[0]
    return known_in(*by_chunks(t_hi.size, lambda c, *out: dd.weighted_mean_slopes(
        t_hi[c], t_lo[c], t_error[c], *total, *divisor, g[c], ESTIMATE_ULPS, *out)), fmt)


def pointwise_loss(name: str, threshold: float, x, y, w, reduction: str,
                   divisor: tuple | None) -> Known:
    """The terms w t per element ('none', flattened, ok per element) or their total over
    ``divisor`` (None for 'sum'): Known."""
    hi, lo, error, ok = pointwise_terms(name, threshold, x, y, w, 1.0, False)
    if reduction == "none":
        return known(hi, lo, ok)
    return known_total(hi, lo, error, divisor)
