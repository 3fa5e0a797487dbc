"""cosine_embedding_loss's gradient rounded to float64: a double-double tier.

Long double balls cannot hold its elements to a 64th of a float64 ulp: each is a difference
x_other - (P / A) x_self over sqrt(A B), which cancels, after a dot product and two norms, so
every element of the gradient fell to arb (2.2e5 input elements/s at the third rung). Here the
row's dot product and norms are sums of exact products (TwoProduct) in double-double, and each
element carries a bound relative to the magnitudes of its two terms
(``double_double.cosine_gradient_rows``); ``engine.Known`` leaves the rows it does not certify
to the engine's tiers, and so is everything where numba does not import.
"""

from __future__ import annotations

import numpy as np

from .compiled_kernels import TIER, kernels
from .engine import ESTIMATE_ULPS, Known, parallel_map, row_chunks
from .formats import FORMATS, Format

CHUNK_ELEMENTS = 1 << 16


def applies(x1: np.ndarray, x2: np.ndarray, fmt: Format) -> bool:
    """Whether this tier covers the call: float64 results, rows with an embedding, finite
    inputs, and numba here."""
    return (fmt == FORMATS["float64"] and x1.size > 0 and x1.shape[-1] > 0
            and bool(np.isfinite(x1).all() and np.isfinite(x2).all())
            and kernels() is not None)


def cosine_gradient(x1: np.ndarray, x2: np.ndarray, scale: np.ndarray, count: int,
                    eps: float) -> Known:
    """d loss / d x1 and d loss / d x2 stacked on a last axis (n, D, 2), for rows x1, x2
    (n, D), ``scale`` the upstream gradient times d loss / d cos per row, divided by
    ``count``, ``eps`` added to each squared norm: Known, ok per row."""
    dd = kernels()
    n, D = x1.shape
    out = [np.empty((n, D)) for _ in range(4)]
    ok = np.zeros(n, dtype=bool)
    x1, x2 = np.ascontiguousarray(x1), np.ascontiguousarray(x2)
    scale = np.ascontiguousarray(scale, dtype=np.float64)

    def chunk(c: slice):
        dd.cosine_gradient_rows(x1[c], x2[c], scale[c], float(count), eps, ESTIMATE_ULPS,
                                *(o[c] for o in out), ok[c])

    parallel_map(chunk, row_chunks(n, D, CHUNK_ELEMENTS))
    rounded = np.stack([out[0], out[2]], axis=-1)
    with np.errstate(invalid="ignore", over="ignore"):  # rows left hold anything
        exact = rounded.astype(np.longdouble) + np.stack([out[1], out[3]], axis=-1)
    return Known(rounded, exact, ok, {TIER: int(ok.sum())})
