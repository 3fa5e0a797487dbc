"""poisson_nll_loss rounded to float64 (log_input, without the Stirling term: torch's default):
a double-double tier for its values and its input gradient.

Each term exp(x) - y x cancels (y counts drawn at the rate exp(x)), and so does a 'mean' of
millions of them: for log-rates N(0,1) the terms' mean is near 0 against magnitudes near 1.6.
Long double balls left 7 % of the 'none' terms and of the gradient's exp(x) - y to arb, and a
'mean' of 2 million elements was not certified at all (64-bit balls cannot hold such a sum; arb
takes at most 2^21 elements). Here each term is a double-double with an absolute error bound
(``double_double.exp_minus``: the exponential within a few u^2, y x exact by TwoProduct), and a
total adds the terms and their bounds (``compiled_kernels.certified_total``). Elements it does
not certify (x beyond -650..680, a non-finite input, a term within a 64th of an ulp of a
rounding boundary) are left to the engine (``engine.Known``), and so is everything where numba
does not import.
"""

from __future__ import annotations

import numpy as np

from .compiled_kernels import kernels, known, known_total
from .engine import ESTIMATE_ULPS, Known, parallel_map, row_chunks
from .formats import FORMATS, Format

CHUNK_ELEMENTS = 1 << 16


def poisson_applies(x: np.ndarray, log_input: bool, full: bool, fmt: Format) -> bool:
    """Whether this tier covers the call: float64 results, log_input without the Stirling
    term, some elements, and numba here."""
    return fmt == FORMATS["float64"] and log_input and not full and x.size > 0 and (
        kernels() is not None)


def _terms(x, y, times_x: bool, g, count: int, estimate_ulps: float):
    """``double_double.exp_minus`` over the flattened elements, on the reference's threads:
    (hi, lo, error, ok), each flat."""
    dd = kernels()
    shape = np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(g))
    x, y, g = (np.ascontiguousarray(np.broadcast_to(np.asarray(a, np.float64), shape)).reshape(-1)
               for a in (x, y, g))
    hi, lo, error = np.empty(x.size), np.empty(x.size), np.empty(x.size)
    ok = np.zeros(x.size, dtype=bool)

    def chunk(c: slice):
        dd.exp_minus(x[c], y[c], times_x, g[c], float(count), estimate_ulps,
                     *dd.exp_constants(), hi[c], lo[c], error[c], ok[c])

    parallel_map(chunk, row_chunks(x.size, 1, CHUNK_ELEMENTS))
    return hi, lo, error, ok


def poisson_loss(x, y, reduction: str, count: int) -> Known:
    """exp(x) - y x per element, flattened ('none', ok per element), or the total ('sum';
    'mean' divided by ``count``: one element, ok where certified)."""
    if reduction == "none":
        hi, lo, _, ok = _terms(x, y, True, 1.0, 1, ESTIMATE_ULPS)
        return known(hi, lo, ok)
    hi, lo, error, _ = _terms(x, y, True, 1.0, 1, 0.0)
    return known_total(hi, lo, error, None if reduction == "sum" else (float(count), 0.0))


def poisson_input_gradient(x, y, g, count: int) -> Known:
    """g (exp(x) - y) / count per element, flattened: Known, ok per element."""
    hi, lo, _, ok = _terms(x, y, False, g, count, ESTIMATE_ULPS)
    return known(hi, lo, ok)
