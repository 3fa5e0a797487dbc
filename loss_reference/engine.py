"""The certified evaluation under every reference: tiers of precision, chunks, threads.

A loss's reference is written once, as a function of a backend ``B`` and of its arguments as
backend arrays, using only what every backend offers (+, -, *, / by exact numbers or by balls,
unary minus, ``B.exp``, ``B.log1p``, ``B.softplus``, ``B.sigmoid``, ``B.relu``, ``B.abs``,
``B.sum``, ``B.where``, ``B.reshape``, ``B.asarray``). ``evaluate`` then returns every output
value rounded once to the target format, *certified*: the exact value is known to lie in an
interval that rounds to that one number (and is not a tie). It tries, in order, only for the
outputs the previous tier left uncertified:

1. float64 balls (``balls.FLOAT64_BALLS``), when the target format is at least 8 bits
   narrower than float64 (float32, float16, bfloat16): numpy's SIMD arithmetic, pairwise sums;
2. long double balls (``balls.LONG_DOUBLE_BALLS``): 64-bit significands, pairwise sums;
3. long double balls whose sums add the midpoints exactly (``balls.EXACT_SUM_BALLS``): for
   sums that cancel;
4. python-flint's arb balls at 128, 256, ... 131072 bits (``arb``), element by element.

``EvaluationError`` is raised if even the last tier cannot certify a value (the case is then
skipped, with that reason): never another exception, never a value that is not certified.

Rows and elements. Where the function's output row i depends only on row i of its arguments
(``independent="rows"``; or it acts element by element on their broadcast, ``"elements"``), the
arguments are cut into chunks of about ``CHUNK_ELEMENTS`` elements (or of the work per row the
caller names, ``width``), evaluated on as many threads as the process may use (numpy releases
the GIL), and a later tier recomputes only the rows it must: memory stays bounded and both cores
work. ``evaluate_total`` does the same for a sum over rows (a 'sum' or 'mean' reduction), and
``evaluate_row_sums`` for sums over rows of any shape (a weight's gradient: one sum per weight).
``independent="none"`` evaluates the whole function at once.

The estimate of the exact value that comes with each result (``Evaluated.exact``) is within
``ESTIMATE_ULPS`` of an ulp of the target format: the checks measure errors from it.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .arb import arb_evaluate
from .balls import (EXACT_SUM_BALLS, FLOAT64_BALLS, LD, LONG_DOUBLE_BALLS, Ball, BallBackend,
                    is_exact, precision_of, quiet)
from .formats import ESTIMATE_ULPS, Format, round_float64, round_to_format

# Up to 2**17 bits: a tail exp(-|x|) beside an exact tie is resolved for |x| up to ~9e4, which
# covers every float16 logit; beyond that evaluate() raises EvaluationError rather than guess.
# Each rung doubles the bits (an arb operation costs about bits^1.6): a value that needs 20000
# bits costs 32768 of them, not 131072.
ARB_PRECISIONS = tuple(2 ** k for k in range(7, 18))
CHUNK_ELEMENTS = 1 << 16  # argument elements per chunk of rows
# arb costs microseconds per operation and element: a sum over more elements than this that
# 64-bit balls cannot certify is reported as uncertified rather than computed for hours.
ARB_MAX_ELEMENTS = 1 << 21
# Outputs certified per tier (backend name) since the last reset: the benchmark reads them.
STATS = Counter()
_STATS_LOCK = threading.Lock()
_ARB_LOCK = threading.Lock()  # flint's working precision is global to the process
_POOL = None
_POOL_PREFIX = "reference-pool"
_BLAS = None  # threadpoolctl's handle on the BLAS libraries, made with the pool


class EvaluationError(RuntimeError):
    """The reference could not certify a result (would need more than the largest precision)."""


@dataclass
class Evaluated:
    """A certified reference result: rounded to the target format, and the best estimate."""

    rounded: np.ndarray  # float64 holding numbers of the target format
    exact: np.ndarray  # long double estimate of the exact value (for error reporting)


@dataclass
class Known:
    """Results a loss certified before the tiers, by an error analysis of its own (a fast
    float64 tier: bounds per row rather than a ball per element); ``evaluate`` and
    ``evaluate_row_sums`` then compute only the rest."""

    rounded: np.ndarray  # the certified results where ok (anything elsewhere)
    exact: np.ndarray  # their estimates
    ok: np.ndarray  # bool: per row for ``evaluate``, per element for ``evaluate_row_sums``
    tiers: dict | None = None  # how many of the ok each tier certified (default: all float64)

    def count(self) -> None:
        """Add the known results to ``STATS``."""
        for name, certified in (self.tiers or {FLOAT64_BALLS.name: int(self.ok.sum())}).items():
            _count(name, certified)

    def whole(self, shape=None) -> Evaluated | None:
        """The results (reshaped to ``shape``) when every one is certified, counted; else None.
        A caller then skips the inputs that only the engine's tiers would need (decisions)."""
        if not np.all(self.ok):
            return None
        self.count()
        rounded, exact = np.asarray(self.rounded), np.asarray(self.exact)
        if shape is not None:
            rounded, exact = rounded.reshape(shape), exact.reshape(shape)
        return Evaluated(rounded, exact)


def filled(shape, value) -> Evaluated:
    """A result known without evaluation: ``value`` everywhere (0, nan, an infinity)."""
    return Evaluated(np.full(shape, value), np.full(shape, value, dtype=LD))


def ball_tiers(fmt: Format) -> list:
    """The ball backends tried for ``fmt``, fastest first."""
    fast = [FLOAT64_BALLS] if fmt.precision + 8 <= 53 else []
    return fast + [LONG_DOUBLE_BALLS, EXACT_SUM_BALLS]


CERTIFY_BLOCK = 1 << 15  # elements certified at a time (by numpy, where numba is missing)
CERTIFY_SHARE = 1 << 16  # the fewest elements a thread certifies (compiled: 0.1 ms or so)


def certify(ball: Ball, fmt: Format):
    """(mid rounded to fmt, ok): ok where the whole ball (its radius widened by 1e-4, for the
    rounding of the radii themselves) lies strictly inside the rounding interval of that one
    number (so neither end is a tie) and the radius is within ESTIMATE_ULPS of an ulp (the
    midpoint is a good estimate of the exact value); or beyond the overflow threshold, whole.
    An exact value (radius 0: an input, or a sum or product of exact numbers that rounded to
    itself) passes as its own correct rounding, a tie included; exact infinities as they are.

    One rounding of the midpoint: the interval of a number r of the format reaches half the gap
    to its neighbour on each side (away from zero the ulp of r, towards zero half of it just
    above a power of two), and mid - r is exact (r is mid rounded).
    """
    mid, rad = ball.mid, np.broadcast_to(ball.rad, ball.mid.shape)
    if mid.dtype == np.float64 and _certify_kernel() is not None:
        return _certify_compiled(mid, rad, fmt)
    if mid.size <= CERTIFY_BLOCK:
        return _certify_block(mid, rad, fmt)
    # Blocks of a large ball (a layer's weight gradient) keep the dozen temporaries of the
    # test in the caches: several times faster than whole-array passes.
    flat_mid, flat_rad = mid.reshape(-1), rad.reshape(-1)
    rounded, ok = np.empty(mid.size), np.empty(mid.size, dtype=bool)

    def run(starts):
        for start in starts:
            block = slice(start, start + CERTIFY_BLOCK)
            rounded[block], ok[block] = _certify_block(flat_mid[block], flat_rad[block], fmt)

    starts = np.arange(0, mid.size, CERTIFY_BLOCK)
    parallel_map(run, np.array_split(starts, min(_threads(), len(starts))))  # one run a thread
    return rounded.reshape(mid.shape), ok.reshape(mid.shape)


@lru_cache(maxsize=None)
def _certify_kernel():
    """``certify_kernel.certify_elements``, or None where numba does not import."""
    try:
        from .certify_kernel import certify_elements
    except ImportError:
        return None
    return certify_elements


def _certify_compiled(mid: np.ndarray, rad: np.ndarray, fmt: Format):
    """``certify`` of float64 balls by the compiled kernel (``certify_kernel``): the same
    results as ``_certify_block``'s, in one pass; large arrays by a share a thread."""
    flat_mid = np.ascontiguousarray(mid).reshape(-1)
    flat_rad = np.ascontiguousarray(rad, dtype=np.float64).reshape(-1)
    rounded, ok = np.empty(mid.size), np.empty(mid.size, dtype=bool)
    kernel, overflow = _certify_kernel(), float(np.float64(fmt.overflow_threshold))

    def run(part: slice) -> None:
        kernel(flat_mid[part], flat_rad[part], fmt.precision, fmt.min_exponent,
               fmt.max_finite, overflow, ESTIMATE_ULPS, rounded[part], ok[part])

    parallel_map(run, certify_shares(mid.size))
    return rounded.reshape(mid.shape), ok.reshape(mid.shape)


def certify_shares(size: int) -> list:
    """A compiled certification's slices of ``size`` elements: one a thread, each of at least
    CERTIFY_SHARE elements (one slice where there are fewer)."""
    return even_slices(size, max(1, min(_threads(), size // CERTIFY_SHARE)))


def _certify_block(mid: np.ndarray, rad: np.ndarray, fmt: Format):
    """``certify`` of one block of midpoints and radii."""
    precision = precision_of(mid)
    dtype, tiny = precision.dtype, precision.tiny
    exact = rad == 0  # an exact value: even a tie has one right rounding (to even)
    slack = dtype(1 + 2.0 ** -50)  # for the two rounded operations of the test itself
    with quiet():
        rad = rad * dtype(1.0001) + tiny
        if dtype is np.float64:
            rounded = round_float64(mid, fmt)
        else:
            rounded = round_to_format(mid, fmt)[0]
        away = (mid - rounded.astype(dtype)) * np.where(rounded < 0, -1, 1).astype(dtype)
        spacing, narrower = fmt.gaps(rounded)
        half_up = np.asarray(spacing, dtype) / 2
        half_down = np.asarray(narrower, dtype) / 2
        inside = ((away + rad) * slack < half_up) & ((rad - away) * slack < half_down)
        precise = rad <= half_down * dtype(2 * ESTIMATE_ULPS)
        beyond = (np.abs(mid) - rad) / slack > dtype(fmt.overflow_threshold)
        finite = np.isfinite(rounded)
    exact_special = exact & ~np.isfinite(mid)
    ok = (finite & inside & precise) | (~finite & beyond & np.isfinite(rad)) | exact
    with np.errstate(over="ignore"):  # the cast of a long double beyond float64: inf, unused
        special = mid.astype(np.float64)
    return np.where(exact_special, special, rounded), np.asarray(ok)


def _count(backend_name: str, certified: int) -> None:
    if certified:
        with _STATS_LOCK:
            STATS[backend_name] += certified


def _threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def thread_count() -> int:
    """How many threads ``parallel_map`` runs its items on (1: in the caller's thread)."""
    return _threads()


def parallel_map(function, items: list) -> list:
    """``[function(item) for item in items]``, on a pool of threads when there are several.

    The threads already keep every core busy, so BLAS runs on one thread meanwhile: two
    threads' products each on every core ran 1.5-3 times slower than one core each."""
    global _POOL
    if len(items) < 2 or _threads() < 2 or threading.current_thread().name.startswith(
            _POOL_PREFIX):  # already on the pool: its threads would wait for themselves
        return [function(item) for item in items]
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_threads(), thread_name_prefix=_POOL_PREFIX)
    with blas_on_one_thread():
        return list(_POOL.map(function, items))


@contextmanager
def blas_on_one_thread():
    """Within this block BLAS (numpy's) computes every product on its caller's thread; where
    there is one core, nothing changes.

    For a reference that splits its products over ``parallel_map`` itself. OpenBLAS's own
    threads spin for about 0.1 s after each product they share, waiting for the next: where
    a product on every core came before the pool's threads (a softmax's kernels after the
    logits), the spinning thread held a core they needed (a third of all CPU time in
    linear_cross_entropy's float32 gradient, which took 1.4 times as long)."""
    global _BLAS
    if _threads() < 2:
        yield
        return
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController  # 27 ms: only where threads run

        _BLAS = ThreadpoolController()
    with _BLAS.limit(limits=1, user_api="blas"):
        yield


def even_slices(n: int, parts: int) -> list:
    """``parts`` consecutive slices of range(n), their lengths within one of each other."""
    bounds = [n * k // parts for k in range(parts + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def row_chunks(rows: int, width: int, chunk_elements: int = 0) -> list:
    """Slices of ``rows`` rows, each of at most about ``chunk_elements`` (default
    CHUNK_ELEMENTS) elements of ``width`` per row; at least one per thread when the work fills
    more than one chunk of CHUNK_ELEMENTS (so that every core works on a large batch)."""
    step = max(1, (chunk_elements or CHUNK_ELEMENTS) // max(width, 1))
    if rows * width > CHUNK_ELEMENTS:
        step = min(step, max(1, -(-rows // _threads())))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)] or [
        slice(0, 0)]


def _arb_tiers(function, args, fmt: Format):
    """The arb tier on the whole function: (rounded, estimate, ok), at the first precision that
    certifies every output, or the last one tried.

    Where the arguments hold a NaN or an infinity and every output left uncertified has no
    finite enclosure (arb's nan or infinite balls) at two precisions in a row, it stops there:
    such values come from the non-finite arguments and more bits do not change them (a NaN in
    a sum of 1,600 terms would otherwise cost minutes at up to 131072 bits; the caller raises
    EvaluationError for what is left)."""
    nonfinite_args = any(np.asarray(a).dtype.kind == "f" and not np.isfinite(a).all()
                         for a in args)
    hopeless_before = False
    with _ARB_LOCK:
        for precision in ARB_PRECISIONS:
            rounded, exact, ok = arb_evaluate(function, args, fmt, precision)
            if ok.all():
                break
            hopeless = nonfinite_args and bool(np.isnan(rounded[~ok]).all())
            if hopeless and hopeless_before:
                break
            hopeless_before = hopeless
    _count("arb", int(ok.sum()))
    return rounded, exact, ok


def _uncertified(count: int, fmt: Format) -> EvaluationError:
    return EvaluationError(f"could not certify the rounding of {count} value(s) to {fmt.name} "
                           f"with arb balls of up to {ARB_PRECISIONS[-1]} bits (none finite "
                           f"where the arguments hold a NaN or an infinity)")


# --- rows and elements ---------------------------------------------------------------------------

def _rows_tiers(function, rows: list, shared: list, fmt: Format) -> Evaluated:
    """Every tier on the rows the previous one left uncertified; rows are independent."""
    count = len(rows[0])
    if count == 0:  # nothing to certify: the output's shape from one evaluation
        backend = ball_tiers(fmt)[0]
        ball = function(backend, *[backend.asarray(a) for a in rows + list(shared)])
        return Evaluated(np.asarray(ball.mid, np.float64), np.asarray(ball.mid, LD))
    todo = np.arange(count)
    rounded = exact = None
    for backend in ball_tiers(fmt):
        sub = [a[todo] for a in rows] if len(todo) < count else rows
        ball = function(backend, *[backend.asarray(a) for a in sub],
                        *[backend.asarray(a) for a in shared])
        values, ok = certify(ball, fmt)
        if rounded is None:
            rounded = np.empty((count,) + values.shape[1:])
            exact = np.empty((count,) + values.shape[1:], dtype=LD)
        rounded[todo], exact[todo] = values, ball.mid
        row_ok = ok.reshape(len(todo), -1).all(axis=1)
        _count(backend.name, int(row_ok.sum()))
        todo = todo[~row_ok]
        if not len(todo):
            return Evaluated(rounded, exact)
    sub = [a[todo] for a in rows]
    values, estimate, ok = _arb_tiers(function, sub + list(shared), fmt)
    if not ok.all():
        raise _uncertified(int((~ok).sum()), fmt)
    rounded[todo], exact[todo] = values, estimate
    return Evaluated(rounded, exact)


def _whole_tiers(function, args: list, fmt: Format) -> Evaluated:
    """Every tier on the whole function; each keeps what the previous ones certified."""
    rounded = exact = ok = None
    for backend in ball_tiers(fmt):
        ball = function(backend, *[backend.asarray(a) for a in args])
        values, certified = certify(ball, fmt)
        if rounded is None:
            rounded, exact, ok = values, np.array(ball.mid, dtype=LD), certified
        else:
            better = certified & ~ok
            rounded = np.where(better, values, rounded)
            exact = np.where(better, ball.mid, exact)
            ok = ok | certified
        _count(backend.name, int(certified.sum()))
        if ok.all():
            return Evaluated(rounded, exact)
    values, estimate, certified = _arb_tiers(function, args, fmt)
    if not (certified | ok).all():
        raise _uncertified(int((~(certified | ok)).sum()), fmt)
    return Evaluated(np.where(ok, rounded, values), np.where(ok, exact, estimate))


def evaluate(function, args, fmt: Format, independent: str = "none", shared=(), width: int = 0,
             chunk_elements: int = 0, known: Known | None = None) -> Evaluated:
    """Evaluate ``function(B, *args, *shared)`` exactly and round it once to ``fmt``.

    ``args`` (and ``shared``) are numpy arrays of exactly representable numbers (the inputs the
    candidate saw). ``independent`` says how the outputs depend on them:

    - ``"elements"``: the function acts element by element on its broadcast ``args``;
    - ``"rows"``: output row i (leading axis, any trailing shape) depends only on row i of
      every one of ``args``, and on ``shared`` whole (a divisor, a class weight);
    - ``"none"``: the whole function is evaluated at once.

    ``width``: the elements of work per row, when the function's own arrays are wider than its
    arguments (the logits of a linear layer); ``chunk_elements``: a larger chunk where the work
    re-reads shared arguments per chunk (a weight matrix); ``known``: the rows (or, by
    elements, the broadcast elements flattened) already certified, the tiers evaluate the
    others.
    """
    args = [np.asarray(a) for a in args]
    shared = [np.asarray(a) for a in shared]
    if known is not None and independent == "elements":
        shape = np.broadcast_shapes(*(a.shape for a in args))
        flat = [np.broadcast_to(a, shape).reshape(-1) for a in args]
        out = evaluate(function, flat, fmt, "rows", shared, width, chunk_elements, known)
        return Evaluated(out.rounded.reshape(shape), np.asarray(out.exact).reshape(shape))
    if known is not None:
        if independent != "rows":
            raise ValueError("known results complete only an evaluation by rows or elements")
        known.count()
        todo = np.flatnonzero(~known.ok)
        if not len(todo):  # the loss's tier certified every row: its arrays, not copies
            return Evaluated(known.rounded, np.asarray(known.exact, dtype=LD))
        rounded, exact = known.rounded.copy(), np.array(known.exact, dtype=LD)
        if len(todo):
            rest = evaluate(function, [a[todo] for a in args], fmt, "rows", shared, width,
                            chunk_elements)
            rounded[todo], exact[todo] = rest.rounded, rest.exact
        return Evaluated(rounded, exact)
    if independent == "none":
        return _whole_tiers(function, args + shared, fmt)
    shape = None
    if independent == "elements":
        broadcast = np.broadcast_arrays(*args)
        shape = broadcast[0].shape
        args = [a.reshape(-1) for a in broadcast]
    count = len(args[0])
    width = width or max((a.size // max(count, 1) for a in args), default=1)
    out = _RowResults(count)
    parallel_map(lambda rows: out.put(rows, _rows_tiers(function, [a[rows] for a in args],
                                                        shared, fmt)),
                 row_chunks(count, width, chunk_elements))
    result = out.evaluated()
    if shape is not None:
        result = Evaluated(result.rounded.reshape(shape), result.exact.reshape(shape))
    return result


class _RowResults:
    """``evaluate``'s results by rows, each chunk's written into one pair of arrays as it comes
    (made by the first): a chunk's results are freed at once, and are not all held for a
    concatenation. At a language model's 512 x 50,257 gradient, the 512 chunks' results and
    their concatenation were 1.2 GB of fresh memory, whose page faults took most of its time."""

    def __init__(self, count: int):
        self.count, self.rounded, self.exact = count, None, None
        self.lock = threading.Lock()

    def put(self, rows: slice, part: Evaluated) -> None:
        """Write the chunk ``rows``' results."""
        with self.lock:
            if self.rounded is None:  # float64 and long double, as Evaluated's
                self.rounded = np.empty((self.count,) + part.rounded.shape[1:])
                self.exact = np.empty((self.count,) + np.shape(part.exact)[1:], LD)
        self.rounded[rows], self.exact[rows] = part.rounded, part.exact

    def evaluated(self) -> Evaluated:
        """The results of every row (each chunk put)."""
        return Evaluated(self.rounded, self.exact)


# --- sums over rows ----------------------------------------------------------------------------

def streamed_sum(contribution, chunks: list) -> Ball:
    """The sum of ``contribution(chunk)`` over the chunks, pairwise (a binary counter of
    partial sums), computed as many at a time as there are threads: memory holds O(log n)
    contributions, not all of them (a weight's gradient is one (C, D) array per chunk)."""
    levels = []  # levels[i]: None, or the sum of 2**i contributions
    step = max(_threads(), 1)
    sums = _PartialSums()
    for start in range(0, len(chunks), step):
        for part in parallel_map(contribution, chunks[start:start + step]):
            for i in range(len(levels) + 1):
                if i == len(levels):
                    levels.append(part)
                    break
                if levels[i] is None:
                    levels[i] = part
                    break
                part, levels[i] = sums.add(levels[i], part), None
    total = None
    for part in levels:
        if part is not None:
            total = part if total is None else sums.add(total, part)
    return total


class _PartialSums:
    """``streamed_sum``'s additions: for float64 balls of one 2-D shape, neither exact (a
    weight's gradient per chunk, (C, D) each), one compiled pass (``double_double.ball_sum``,
    the same bits as Ball's addition) into the arrays of a partial sum that is no longer
    needed, so that a vocabulary's (C, D) arrays are not made afresh for every addition: Ball's
    numpy passes and new arrays took as long as a chunk's own product. Ball's addition
    otherwise. The contributions themselves are never written."""

    def __init__(self):
        self.owned = set()  # ids of the live partial sums made here, whose arrays are ours
        self.spare = []  # (mid, rad) of partial sums added into another

    def add(self, a: Ball, b: Ball) -> Ball:
        from .compiled_kernels import kernels  # it imports this module

        dd = kernels()
        if (dd is None or a.mid.ndim != 2 or a.shape != b.shape
                or any(v.dtype != np.float64 for v in (a.mid, a.rad, b.mid, b.rad))
                or is_exact(a) or is_exact(b)):
            return a + b
        into = a if id(a) in self.owned else b if id(b) in self.owned else None
        if into is None:
            into = Ball(*(self.spare.pop() if self.spare and self.spare[-1][0].shape == a.shape
                          else (np.empty(a.shape), np.empty(a.shape))))
            self.owned.add(id(into))
        for done in (a, b):
            if done is not into and id(done) in self.owned:
                self.owned.discard(id(done))
                self.spare.append((done.mid, done.rad))
        precision = FLOAT64_BALLS.precision
        dd.ball_sum(a.mid, a.rad, b.mid, b.rad, into.mid, into.rad, precision.unit_roundoff,
                    precision.tiny)
        return into


def evaluate_row_sums(chunk_function, row_args, fmt: Format, finish=None, shared=(),
                      width: int = 0, chunk_elements: int = 0,
                      selectable: bool = False, known: Known | None = None) -> Evaluated:
    """``finish(B, total, *shared)`` (the total itself when None), exactly, rounded once to
    ``fmt``: ``total`` is the sum over chunks of rows of ``chunk_function(B, *rows, *shared)``,
    the contribution of those rows (any shape, the same for every chunk: e.g. a product G^T x
    over the chunk's rows), row i of its output depending only on row i of each of
    ``row_args``.

    The rows are cut into chunks (``width``, ``chunk_elements`` as for ``evaluate``), each
    chunk's contribution computed on the pool of threads, and the contributions added, in each
    ball tier in turn until every element is certified; arb then evaluates the whole (up to
    ARB_MAX_ELEMENTS argument elements).

    ``selectable``: ``chunk_function`` also takes a keyword ``only`` (indices along the
    total's first axis) and then returns only those rows of its contribution, and ``finish``
    is None. A later ball tier then recomputes only the rows of the total that an earlier one
    left uncertified (a weight's gradient: the few classes whose sums cancel), not the whole.
    ``known``: elements of the total already certified; the tiers then recompute only the
    rows of the total that hold the others (the whole total unless ``selectable``).
    """
    row_args = [np.asarray(a) for a in row_args]
    shared = [np.asarray(a) for a in shared]
    count = len(row_args[0])
    width = width or max((a.size // max(count, 1) for a in row_args), default=1)
    chunks = row_chunks(count, width, chunk_elements)
    if selectable and finish is not None:
        raise ValueError("a selectable sum takes no finish")

    def whole(B, *arrays):
        total = chunk_function(B, *arrays)
        return total if finish is None else finish(B, total, *arrays[len(row_args):])

    rounded = exact = ok = None
    if known is not None:
        known.count()
        if known.ok.all():
            return Evaluated(known.rounded, np.array(known.exact, dtype=LD))
        if selectable:
            rounded, exact, ok = (known.rounded.copy(), np.array(known.exact, dtype=LD),
                                  known.ok.copy())
    for backend in ball_tiers(fmt):
        own_shared = [backend.asarray(a) for a in shared]
        only = None
        if selectable and ok is not None:
            only = np.flatnonzero(~ok.reshape(len(ok), -1).all(axis=1))

        def contribution(rows, backend=backend, own_shared=own_shared, only=only):
            part = [backend.asarray(a[rows]) for a in row_args]
            if only is None:
                return chunk_function(backend, *part, *own_shared)
            return chunk_function(backend, *part, *own_shared, only=only)

        total = streamed_sum(contribution, chunks)
        ball = total if finish is None else finish(backend, total, *own_shared)
        values, certified = certify(ball, fmt)
        if only is None:
            if certified.all():
                _count(backend.name, int(certified.size))
                return Evaluated(values, np.array(ball.mid, dtype=LD))
            if not selectable:
                continue
            rounded, exact, ok = values, np.array(ball.mid, dtype=LD), certified
            _count(backend.name, int(certified.sum()))
            continue
        better = certified & ~ok[only]
        rounded[only] = np.where(better, values, rounded[only])
        exact[only] = np.where(better, ball.mid, exact[only])
        ok[only] |= certified
        _count(backend.name, int(better.sum()))
        if ok.all():
            return Evaluated(rounded, exact)
    size = sum(a.size for a in row_args)
    if size > ARB_MAX_ELEMENTS:
        raise EvaluationError(f"a sum over {size} elements that 64-bit balls cannot certify "
                              f"(more than the {ARB_MAX_ELEMENTS} the slow exact tier takes)")
    if ok is not None:  # selectable: arb only on the rows of the total left uncertified
        todo = np.flatnonzero(~ok.reshape(len(ok), -1).all(axis=1))
        values, estimate, certified = _arb_selected(chunk_function, row_args + shared, fmt,
                                                    todo)
        # arb's values where it certified them; elsewhere what the ball tiers had
        rounded[todo] = np.where(certified, values, rounded[todo])
        exact[todo] = np.where(certified, estimate, exact[todo])
        ok[todo] |= certified
        if not ok.all():
            raise _uncertified(int((~ok).sum()), fmt)
        return Evaluated(rounded, exact)
    values, estimate, certified = _arb_tiers(whole, row_args + shared, fmt)
    if not certified.all():
        raise _uncertified(int((~certified).sum()), fmt)
    return Evaluated(values, estimate)


def _arb_selected(chunk_function, args: list, fmt: Format, todo: np.ndarray):
    """The arb tier of a selectable sum on the rows ``todo`` of its total: (rounded, estimate,
    ok) for those rows, each precision computing only the rows that the lower ones left
    uncertified (a value a hair from a tie of the format can need 131072 bits; the rest of
    the total should not be recomputed at that precision). Stops early as ``_arb_tiers``
    does where non-finite arguments leave nothing finite to certify."""
    nonfinite_args = any(np.asarray(a).dtype.kind == "f" and not np.isfinite(a).all()
                         for a in args)
    rounded = estimate = ok = None
    remaining, hopeless_before = np.arange(len(todo)), False
    with _ARB_LOCK:
        for precision in ARB_PRECISIONS:
            rows = todo[remaining]

            def selected(B, *arrays, rows=rows):
                return chunk_function(B, *arrays, only=rows)

            values, exact, certified = arb_evaluate(selected, args, fmt, precision)
            if rounded is None:
                tail = values.shape[1:]
                rounded, estimate = np.empty((len(todo),) + tail), np.empty(
                    (len(todo),) + tail, dtype=LD)
                ok = np.zeros((len(todo),) + tail, dtype=bool)
            rounded[remaining], estimate[remaining], ok[remaining] = values, exact, certified
            _count("arb", int(certified.sum()))
            row_ok = certified.reshape(len(rows), -1).all(axis=1)
            remaining = remaining[~row_ok]
            if not len(remaining):
                break
            hopeless = nonfinite_args and bool(np.isnan(values[~certified]).all())
            if hopeless and hopeless_before:
                break
            hopeless_before = hopeless
    return rounded, estimate, ok


def evaluate_total(row_function, row_args, fmt: Format, finish=None, shared=(),
                   width: int = 0, chunk_elements: int = 0,
                   known: Known | None = None) -> Evaluated:
    """``finish(B, total, *shared)`` (the total itself when None), total being the sum of every
    element of ``row_function(B, *row_args, *shared)``, whose output row i depends only on row
    i of each of ``row_args``: exactly, rounded once to ``fmt`` (``evaluate_row_sums``)."""
    def chunk_total(B, *arrays):
        return B.sum(row_function(B, *arrays))

    return evaluate_row_sums(chunk_total, row_args, fmt, finish=finish, shared=shared,
                             width=width, chunk_elements=chunk_elements, known=known)


def is_ball_backend(backend) -> bool:
    """Whether ``backend`` computes with numpy balls (rather than arb objects)."""
    return isinstance(backend, BallBackend)
