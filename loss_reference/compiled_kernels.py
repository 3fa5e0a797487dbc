"""What the double-double tiers share: access to their compiled kernels (``double_double``,
whose import imports numba, 0.4 s), made on first use, and None where numba does not import,
so that the tiers step aside and the engine's tiers compute what they would have; TIER, the
name the tiers count their results under (``engine.STATS``, the benchmark's columns);
elementwise kernels' arguments and chunks; and the certified total of rows' double-doubles
('sum' and 'mean' reductions)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .balls import Ball
from .decisions import float_sum
from .engine import ESTIMATE_ULPS, Known, certify, certify_shares, parallel_map, row_chunks
from .formats import FORMATS, Format, round_float64, round_to_format

TIER = "double-double"


@lru_cache(maxsize=None)
def kernels():
    """``loss_reference.double_double``, or None where numba is missing."""
    try:
        from . import double_double
    except ImportError:
        return None
    return double_double


def for_float64_elements(x: np.ndarray, fmt: Format) -> bool:
    """Whether an elementwise double-double tier covers the call: float64 results, some
    elements, and numba here."""
    return fmt == FORMATS["float64"] and np.size(x) > 0 and kernels() is not None


CHUNK_ELEMENTS = 1 << 16  # elements per chunk of an elementwise kernel (a task for one thread)


def flat_arrays(*arrays) -> list:
    """The arrays broadcast together, flattened, contiguous float64 (an elementwise kernel's
    arguments)."""
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    return [np.ascontiguousarray(np.broadcast_to(np.asarray(a, np.float64), shape)).reshape(-1)
            for a in arrays]


def by_chunks(n: int, run):
    """``run(c, hi[c], lo[c], error[c], ok[c])`` over chunks c of n flattened elements, on the
    reference's threads: (hi, lo, error, ok), an elementwise kernel's outputs."""
    hi, lo, error = np.empty(n), np.empty(n), np.empty(n)
    ok = np.zeros(n, dtype=bool)
    parallel_map(lambda c: run(c, hi[c], lo[c], error[c], ok[c]),
                 row_chunks(n, 1, CHUNK_ELEMENTS))
    return hi, lo, error, ok


def exact_divisor(counted: np.ndarray) -> tuple:
    """The sum of ``counted`` as a double-double (hi, lo) within u^2 of it: fsum is the
    correctly rounded sum, and the fsum of the residual the correctly rounded residual (0
    where the sum is not finite: the callers decline it)."""
    total = float_sum(counted)
    return total, float_sum(np.append(counted, -total)) if math.isfinite(total) else 0.0


def known(hi, lo, ok) -> Known:
    """Known results rounded to hi (exact: hi + lo in long double), certified where ok, for the
    engine to complete, counted under TIER."""
    with np.errstate(invalid="ignore", over="ignore"):  # the results left hold anything
        exact = hi.astype(np.longdouble) + lo
    return Known(hi, exact, ok, {TIER: int(ok.sum())})


def known_in(hi, lo, error, ok, fmt: Format) -> Known:
    """``known`` for float64 results (``ok``: the kernel's own certification); for a narrower
    format, each double-double certified by ``certify_narrower`` (for the calls where the
    engine's float64 balls cancel too)."""
    if fmt == FORMATS["float64"]:
        return known(hi, lo, ok)
    rounded, ok = certify_narrower(hi, lo, error, fmt)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = hi.astype(np.longdouble) + lo
    return Known(rounded, exact, ok, {TIER: int(ok.sum())})


def certify_narrower(hi, lo, error, fmt: Format) -> tuple:
    """(rounded to ``fmt``, ok) of the double-doubles hi + lo, each within ``error``, for a
    format narrower than float64: ``engine.certify`` of the ball hi within |lo| + error, and
    where hi is itself one of the format's ties (a float64 number halfway between two of its
    numbers) that ball cannot tell its sides apart: there hi + lo lies on lo's side wherever
    |lo| exceeds the error, within a float64 ulp of hi, so it rounds as hi's next float64
    number towards lo does (a bfloat16 gradient of -0.505859375 + 2.3e-18 was left). In one
    compiled pass where numba imports (``certify_kernel.certify_narrower_elements``: 4 ms a
    million elements on two threads, where these numpy passes took 10-13), on the reference's
    threads."""
    compiled = _narrower_kernel()
    if compiled is not None:
        return _certify_narrower_compiled(compiled, hi, lo, error, fmt)
    return certify_narrower_numpy(hi, lo, error, fmt)


def certify_narrower_numpy(hi, lo, error, fmt: Format) -> tuple:
    """``certify_narrower`` by numpy passes (where numba does not import)."""
    rounded, ok = certify(Ball(hi, np.abs(lo) + error), fmt)
    with np.errstate(invalid="ignore"):
        sided = ~ok & (np.abs(lo) > error * (1 + 2.0 ** -40))
    if not sided.any():
        return rounded, ok
    rounded, ok = rounded.copy(), ok.copy()  # their own, written at the sided elements
    top, low = hi[sided], lo[sided]
    tie = round_to_format(top, fmt)[1]
    values, certified = rounded[sided], ok[sided]
    values[tie] = round_float64(np.nextafter(top[tie], np.copysign(np.inf, low[tie])), fmt)
    certified[tie] = True
    rounded[sided], ok[sided] = values, certified
    return rounded, ok


@lru_cache(maxsize=None)
def _narrower_kernel():
    """``certify_kernel.certify_narrower_elements``, or None where numba does not import."""
    try:
        from .certify_kernel import certify_narrower_elements
    except ImportError:
        return None
    return certify_narrower_elements


def _certify_narrower_compiled(kernel, hi, lo, error, fmt: Format) -> tuple:
    """``certify_narrower`` by the compiled kernel, a share of the elements a thread."""
    shape = np.shape(hi)
    flat = [np.ascontiguousarray(np.broadcast_to(v, shape), dtype=np.float64).reshape(-1)
            for v in (hi, lo, error)]
    size = flat[0].size
    rounded, ok = np.empty(size), np.empty(size, dtype=bool)
    overflow = float(np.float64(fmt.overflow_threshold))

    def run(part: slice) -> None:
        kernel(*(v[part] for v in flat), fmt.precision, fmt.min_exponent, fmt.max_finite,
               overflow, ESTIMATE_ULPS, rounded[part], ok[part])

    parallel_map(run, certify_shares(size))
    return rounded.reshape(shape), ok.reshape(shape)


def known_total(hi, lo, error, divisor: tuple | None) -> Known:
    """The certified total (one element, ok where certified) of rows' losses hi + lo within
    ``error`` each: their sum, divided by ``divisor`` (a double-double (hi, lo) within u^2 of
    the exact divisor, ``exact_divisor``) unless None."""
    rounded, estimate, certified = certified_total(hi, lo, error, divisor)
    return Known(np.array(rounded), np.array(estimate), np.array(certified),
                 {TIER: int(certified)})


def known_reduced(hi, lo, error, ok, reduction: str, count: int) -> Known:
    """An elementwise kernel's outputs as Known: the elements for 'none' (``known``), else
    their total (``known_total``), over ``count`` but for 'sum'."""
    if reduction == "none":
        return known(hi, lo, ok)
    return known_total(hi, lo, error, None if reduction == "sum" else (float(count), 0.0))


def certified_total(hi, lo, error, divisor: tuple | None):
    """(the total's hi, a long double estimate of it, whether hi is its certified rounding)
    of ``known_total``."""
    dd = kernels()
    s_hi, s_lo, s_error = dd.sum_with_error(hi, lo, error)
    # exactly 0 by the sum, not by the quotient: 2^-950 / 2^125 rounds to 0 where the exact
    # quotient (a divisor just below 2^125) rounds up to 2^-1074
    zero = dd.exactly_zero(s_hi, s_lo, s_error)
    if divisor is not None:
        w_hi, w_lo = divisor
        if w_hi == 0 or not math.isfinite(w_hi):
            return np.nan, np.longdouble(np.nan), False
        q_hi, q_lo = dd.div(s_hi, s_lo, w_hi, w_lo)
        s_error = (s_error / abs(w_hi) * (1 + 2.0 ** -50)
                   + (dd.DIV_ERROR + 1) * dd.U2 * abs(q_hi))
        s_hi, s_lo = q_hi, q_lo
    estimate = np.longdouble(s_hi) + s_lo
    if zero:
        return 0.0, estimate, True
    return s_hi, estimate, bool(math.isfinite(s_error)
                          and dd.certified(s_hi, s_lo, s_error, ESTIMATE_ULPS))
