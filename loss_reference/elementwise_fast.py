"""Elementwise gradients that are products of the inputs, rounded to float64: a double-double
tier for slopes of the form (u - v) f g / count (a difference of two inputs, or a sign, times
factors: margin_ranking_loss's gradients, multi_margin_loss's for p = 1).

Long double balls certify them, but at 3e6 input elements/s for float64 results: a ball's
midpoint and radius through every operation, in numpy's long double (the x87 format, no
vector instructions). Here u - v is exact (TwoSum) and the products and the quotient carry one
relative bound (``double_double.scaled_differences``): every element but exact ties is
certified. Elements it leaves go to the engine (``engine.Known``), and so does everything where
numba does not import.
"""

from __future__ import annotations


from .compiled_kernels import (by_chunks, flat_arrays, for_float64_elements, kernels,
                               known)
from .engine import ESTIMATE_ULPS, Known


applies = for_float64_elements  # float64 results, some elements, numba here


def scaled_differences(u, v, f, g, count: int) -> Known:
    """(u - v) f g / count per element (broadcast, flattened): Known, ok per element."""
    dd = kernels()
    u, v, f, g = flat_arrays(u, v, f, g)
    hi, lo, _, ok = by_chunks(u.size, lambda c, *out: dd.scaled_differences(
        u[c], v[c], f[c], g[c], float(count), ESTIMATE_ULPS, *out))
    return known(hi, lo, ok)
