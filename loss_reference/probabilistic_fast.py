"""poisson_nll_loss, kl_div and gaussian_nll_loss rounded to float64: double-double tiers for
their values and gradients (gaussian_nll_loss: ``gaussian_loss``, whose log v cancels against
(x - y)^2 / v for v below 1, and ``gaussian_gradient``, whose variance slope 1 - (x - y)^2 / v
cancels).

poisson_nll_loss (log_input, torch's default; with full, the Stirling term added in
double-double too): each term
exp(x) - y x cancels (y counts drawn at the rate exp(x)), and so does a 'mean' of millions of
them: for log-rates N(0,1) the terms' mean is near 0 against magnitudes near 1.6. Long double
balls left 7 % of the 'none' terms and of the gradient's exp(x) - y to arb, and a 'mean' of 2
million elements was not certified at all (64-bit balls cannot hold such a sum; arb takes at
most 2^21 elements). Here each term is a double-double with an absolute error bound
(``double_double.exp_minus``: the exponential within a few u^2, y x exact by TwoProduct), and a
total adds the terms and their bounds (``compiled_kernels.known_total``).

kl_div: t (log t - x) and the target's slope log t + 1 - x cancel wherever the input is close
to log t (two nearby distributions): long double balls left two thirds of the 'none' terms and
a third of the target slopes to arb. Here log t is a double-double (``double_double.
log_dd``: one Newton step, or log1p's series near 1) with an absolute bound
(``kl_div_terms``); with log_target, exp(t) (t - x) has a relative one.

Elements the tiers do not certify (outside the kernels' domains, non-finite, within a 64th of
an ulp of a rounding boundary) are left to the engine (``engine.Known``), and so is everything
where numba does not import.
"""

from __future__ import annotations

import numpy as np

from .compiled_kernels import (by_chunks, flat_arrays, for_float64_elements, kernels,
                               known, known_reduced)
from .engine import ESTIMATE_ULPS, Known
from .formats import Format


applies = for_float64_elements  # float64 results, some elements, numba here


def poisson_applies(x: np.ndarray, log_input: bool, fmt: Format) -> bool:
    """Whether the poisson tier covers the call: log_input (with or without the Stirling
    term)."""
    return log_input and applies(x, fmt)


def _poisson(x, y, times_x: bool, full: bool, g, count: int, estimate_ulps: float):
    dd = kernels()
    x, y, g = flat_arrays(x, y, g)
    return by_chunks(x.size, lambda c, *out: dd.exp_minus(
        x[c], y[c], times_x, full, g[c], float(count), estimate_ulps, *dd.exp_constants(),
        *out))


def poisson_loss(x, y, reduction: str, count: int, full: bool = False) -> Known:
    """exp(x) - y x per element (``full``: plus the Stirling term where y > 1), flattened
    ('none', ok per element), or the total ('sum'; 'mean' divided by ``count``: one element,
    ok where certified)."""
    parts = _poisson(x, y, True, full, 1.0, 1, ESTIMATE_ULPS if reduction == "none" else 0.0)
    return known_reduced(*parts, reduction, count)


def poisson_input_gradient(x, y, g, count: int) -> Known:
    """g (exp(x) - y) / count per element, flattened: Known, ok per element."""
    hi, lo, _, ok = _poisson(x, y, False, False, g, count, ESTIMATE_ULPS)
    return known(hi, lo, ok)


def poisson_target_gradient(x, y, full: bool, g, count: int) -> Known:
    """g / count times the target's slope -x (``full``: plus log y + 1 / (2 y) where y > 1)
    per element, flattened: Known, ok per element."""
    dd = kernels()
    x, y, g = flat_arrays(x, y, g)
    hi, lo, _, ok = by_chunks(x.size, lambda c, *out: dd.poisson_target_slopes(
        x[c], y[c], full, g[c], float(count), ESTIMATE_ULPS, *dd.exp_constants(), *out))
    return known(hi, lo, ok)


def _kl_div(x, t, log_target: bool, what: int, g, count: int, estimate_ulps: float):
    dd = kernels()
    x, t, g = flat_arrays(x, t, g)
    return by_chunks(x.size, lambda c, *out: dd.kl_div_terms(
        x[c], t[c], log_target, what, g[c], float(count), estimate_ulps, *dd.exp_constants(),
        *out))


def kl_div_loss(x, t, log_target: bool, reduction: str, count: int) -> Known:
    """kl_div's terms, flattened ('none', ok per element; a special element's is not), or
    their total ('sum'; 'mean' and 'batchmean' over ``count``), zero targets exactly 0."""
    parts = _kl_div(x, t, log_target, 0, 1.0, 1, ESTIMATE_ULPS if reduction == "none" else 0.0)
    return known_reduced(*parts, reduction, count)


def kl_div_gradient(x, t, log_target: bool, wrt: str, g, count: int) -> Known:
    """g / count times kl_div's slope in ``wrt`` ('input' or 'target') per element,
    flattened: Known, ok per element (not at special elements)."""
    what = 1 if wrt == "input" else 2
    hi, lo, _, ok = _kl_div(x, t, log_target, what, g, count, ESTIMATE_ULPS)
    return known(hi, lo, ok)


def _gaussian(x, y, v, g, count: int, what: int, full: bool, estimate_ulps: float):
    dd = kernels()
    x, y, v, g = flat_arrays(x, y, v, g)
    return by_chunks(x.size, lambda c, *out: dd.gaussian_terms(
        x[c], y[c], v[c], g[c], float(count), what, full, estimate_ulps, *dd.exp_constants(),
        *out))


def gaussian_loss(x, y, v, reduction: str, count: int, full: bool) -> Known:
    """gaussian_nll_loss's terms, (log v + (x - y)^2 / v) / 2 (+ log(2 pi) / 2 with ``full``),
    v the clamped variance of x's shape: the elements, flattened, for 'none' (ok per element),
    else their total, over ``count`` for 'mean' (``double_double.gaussian_terms``: log v
    cancels against the quotient for v below 1; long double balls left 2 % to arb)."""
    estimate_ulps = ESTIMATE_ULPS if reduction == "none" else 0.0
    return known_reduced(*_gaussian(x, y, v, 1.0, 1, 0, full, estimate_ulps), reduction, count)


def gaussian_gradient(x, y, v, g, count: int, wrt: str) -> Known:
    """g / count times gaussian_nll_loss's slope in its input ((x - y) / v) or its variance
    ((1 - (x - y)^2 / v) / (2 v)), v the clamped variance of x's shape, per element,
    flattened: Known, ok per element (``double_double.gaussian_terms``)."""
    hi, lo, _, ok = _gaussian(x, y, v, g, count, 1 if wrt == "input" else 2, False,
                              ESTIMATE_ULPS)
    return known(hi, lo, ok)
