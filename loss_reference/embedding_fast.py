"""The embedding losses rounded to float64: double-double tiers for cosine_embedding_loss's
values and gradient and the triplet losses' values and gradients under torch's default
distance.

cosine_embedding_loss's values (``cosine_loss``: 1 - cos cancels near 1, and long double balls
left a quarter of the 'none' rows to the exact-sum tier and arb) and gradient.

Long double balls cannot hold its elements to a 64th of a float64 ulp: each is a difference
x_other - (P / A) x_self over sqrt(A B), which cancels, after a dot product and two norms, so
every element of the gradient fell to arb (2.2e5 input elements/s at the third rung). Here the
row's dot product and norms are sums of exact products (TwoProduct) in double-double, and each
element carries a bound relative to the magnitudes of its two terms
(``double_double.cosine_gradient_rows``); ``engine.Known`` leaves the rows it does not certify
to the engine's tiers, and so is everything where numba does not import.

The triplet losses under the pairwise distance with p = 2 (torch's default) or p = 1: a row's
hinge margin + d(a, p) - d(a, n) cancels, and so does the anchor's gradient (for p = 2 a
difference of two unit vectors), so long double balls left 78 % of 'none' rows and every
gradient element to arb, and a 'mean' of 3 million elements was not certified at all (p = 1:
49 % of the rows, and the 'mean' likewise). Each distance is summed in double-double with a
relative bound (``double_double.pairwise_distance_rows``); the hinge, with an absolute bound,
decides the gradient's branches where its ball excludes the kink (``triplet_hinge_rows``; the
engine's balls decide the few rows left), and each gradient element is bounded relative to its
terms (``triplet_gradient_rows``; for p = 1 the slopes are signs, exact).
"""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass

from .compiled_kernels import TIER, kernels, known, known_total
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


def triplet_applies(a: np.ndarray, kind: str, p: float, fmt: Format) -> bool:
    """Whether the triplet tier covers the call: float64 results, the pairwise distance with
    p = 1 or 2 or the cosine distance, rows with an embedding, finite inputs (the caller's
    rows a, p, n), and numba here."""
    return (fmt == FORMATS["float64"] and (kind == "cosine" or (kind == "pairwise"
                                                               and p in (1.0, 2.0)))
            and a[0].size > 0 and a[0].shape[-1] > 0
            and all(bool(np.isfinite(x).all()) for x in a) and kernels() is not None)


@dataclass
class TripletRows:
    """Per row: the distances (3, n) of (a, p), (a, n), (p, n) as hi, lo and a relative error
    bound; the loss max(0, hinge) as hi, lo, an absolute error bound and whether it is
    certified; the signs of the hinge and of d(a, n) - d(p, n) (0 where undecided); the
    distance ('pairwise' or 'cosine') and the pairwise norm's p."""

    d_hi: np.ndarray
    d_lo: np.ndarray
    d_error: np.ndarray
    hi: np.ndarray
    lo: np.ndarray
    error: np.ndarray
    ok: np.ndarray
    hinge: np.ndarray
    order: np.ndarray
    kind: str
    p: float


def triplet_rows(a, p_, n_, eps: float, margin: float, swap: bool, p: float,
                 kind: str = "pairwise") -> TripletRows:
    """The triplet rows' distances, losses and decisions (``TripletRows``) for rows a, p_,
    n_ (n, D), finite, under the p-norm distance (p = 1 or 2) or, for ``kind`` 'cosine', the
    cosine distance (``double_double.cosine_distance_rows``): d(p, n) only under ``swap``
    (else 0)."""
    dd = kernels()
    n, D = a.shape
    d_hi, d_lo, d_error = np.zeros((3, n)), np.zeros((3, n)), np.zeros((3, n))
    pairs = ((a, p_), (a, n_), (p_, n_))[:3 if swap else 2]
    row = [np.empty(n) for _ in range(3)] + [np.zeros(n, dtype=bool)] + [np.empty(n)
                                                                          for _ in range(2)]

    def chunk(c: slice):
        for k, (u, v) in enumerate(pairs):
            u, v = np.ascontiguousarray(u[c]), np.ascontiguousarray(v[c])
            if kind == "cosine":
                dd.cosine_distance_rows(u, v, d_hi[k, c], d_lo[k, c], d_error[k, c])
            else:
                dd.pairwise_distance_rows(u, v, eps, p, d_hi[k, c], d_lo[k, c], d_error[k, c])
        dd.triplet_hinge_rows(margin, d_hi[:, c], d_lo[:, c], d_error[:, c], swap,
                              ESTIMATE_ULPS, *(r[c] for r in row))

    parallel_map(chunk, row_chunks(n, len(pairs) * D, CHUNK_ELEMENTS))
    return TripletRows(d_hi, d_lo, d_error, *row, kind, p)


def triplet_loss(rows: TripletRows, reduction: str) -> Known:
    """The triplet loss from ``triplet_rows``: per row ('none', ok per row) or the total
    ('sum', 'mean': one element, ok where certified)."""
    if reduction == "none":
        return known(rows.hi, rows.lo, rows.ok)
    return known_total(rows.hi, rows.lo, rows.error,
                       (float(len(rows.hi)), 0.0) if reduction == "mean" else None)


def triplet_gradient(a, p_, n_, rows: TripletRows, eps: float, scale: np.ndarray,
                     take_neg: np.ndarray, take_swap: np.ndarray, count: int) -> Known:
    """The anchor's, positive's and negative's gradients stacked on a last axis (n, D, 3), for
    ``scale`` the upstream gradient where the hinge is active (else 0), divided by ``count``,
    and swap's weights of d(a, n) and d(p, n): Known, ok per row."""
    dd = kernels()
    n, D = a.shape
    out_hi, out_lo = np.empty((n, D, 3)), np.empty((n, D, 3))
    ok = np.zeros(n, dtype=bool)
    a, p_, n_ = (np.ascontiguousarray(x) for x in (a, p_, n_))
    scale = np.ascontiguousarray(scale, dtype=np.float64)

    def chunk(c: slice):
        if rows.kind == "cosine":
            dd.triplet_cosine_gradient_rows(a[c], p_[c], n_[c], scale[c], take_neg[c],
                                            take_swap[c], float(count), ESTIMATE_ULPS,
                                            out_hi[c], out_lo[c], ok[c])
            return
        dd.triplet_gradient_rows(a[c], p_[c], n_[c], eps, rows.p, rows.d_hi[:, c],
                                 rows.d_lo[:, c], rows.d_error[:, c], scale[c], take_neg[c],
                                 take_swap[c], float(count), ESTIMATE_ULPS, out_hi[c],
                                 out_lo[c], ok[c])

    parallel_map(chunk, row_chunks(n, 3 * D, CHUNK_ELEMENTS))
    return known(out_hi, out_lo, ok)


def cosine_loss(x1, x2, y, margin: float, eps: float, reduction: str) -> tuple:
    """(Known: the rows' losses ('none') or their total ('sum', 'mean'), the sign of each
    row's cos - margin, 0 where undecided) from ``double_double.cosine_loss_rows``."""
    dd = kernels()
    n, D = x1.shape
    x1, x2 = np.ascontiguousarray(x1), np.ascontiguousarray(x2)
    y = np.ascontiguousarray(y, dtype=np.float64)
    hi, lo, error, hinge = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    ok = np.zeros(n, dtype=bool)

    def chunk(c: slice):
        dd.cosine_loss_rows(x1[c], x2[c], y[c], margin, eps, ESTIMATE_ULPS, hi[c], lo[c],
                            error[c], ok[c], hinge[c])

    parallel_map(chunk, row_chunks(n, D, CHUNK_ELEMENTS))
    if reduction == "none":
        return known(hi, lo, ok), hinge
    return known_total(hi, lo, error, (float(n), 0.0) if reduction == "mean" else None), hinge
