"""ctc_loss's fast tiers for the gradient: the forward-backward recursions in plain arithmetic,
one error bound per sample (for float64 results, in double-double: ``float64_gradient``).

The engine's ball tiers carry a radius beside every cell of the lattice (frames x samples x
states) through every step of the recursions: a dozen numpy operations per step where plain
arithmetic takes four. Every quantity of the recursions is a sum of products of nonnegative
numbers, so each rounding is a relative error, and relative errors compose by adding the
bounds of their logarithms: one bound per sample covers all its cells. ``engine.certify`` then
decides element by element, and the ball tiers recompute only the samples these tiers left
(``engine.Known``). The first tier computes in float64; for float32 results a second one
recomputes in long double the samples the first left (float64's bound, about 1e-12 at 256
frames, leaves about one sample in ten of a typical batch).

The bound, for one sample, with u the unit roundoff of the precision and u1 = u / (1 - 8u)
(|log(1 + d)| <= u1 for one rounding's d, and 8 u1 for the libm's error, ``balls.LIBM_ULPS``):

- at each frame t < L_in, the probabilities p = exp(x), x = lp - shift (the frame's largest
  log-probability), are within a factor exp(8 u1 + u1 |x|) of exact (no |x| term where the
  subtraction was exact, which TwoSum tells);
- a forward step alpha_t = (alpha + alpha from one state below + alpha from two below where a
  skip is allowed) * p_t is two additions and a product; a backward step beta'_{t-1} = the
  same sums of p_t * beta'_t is a product and two additions; rescaling by a power of two is
  exact. Each step adds E_t = (3 + 8 + X_t) u1 to the bound, X_t the largest inexact |x| of
  the sample's states at that frame;
- so alpha_t * beta'_t (frames up to t, then after t) and the total P (all frames) are each
  within exp(A + u1) of exact, A = sum of E_t over t < L_in. A class's sum over its states
  adds (W - 1) u1 (W states, in any order); -g / d / P (the upstream gradient, the reduction's
  divisor, the total) two roundings, and its product with the class's sum one:
  Lambda = 2 A + (W + 4) u1, plus float64's u for the result's conversion. The radius is
  |v| expm1(Lambda) (a little more, for the bound's own rounding) plus ``ABSOLUTE`` for an
  underflow of that conversion.

Underflow voids a relative bound, so a sample is left to the later tiers when one of its
computed values leaves the normal range where the exact one does not: a value below the
smallest normal (before or after its rescaling) where the exact path counts
(``ctc_lattice.path_counts``) say it is positive, a quotient that underflows or overflows; or
when an x lies within 64 binades of exp's underflow, a log-probability of a running frame is
nan or +inf, the alignment is impossible, or the upstream gradient is not finite. Computed
values are exactly zero where exact ones are (zero probabilities pass through sums and
products as zeros), and such zeros are certified as they are. Rescaling every 8 frames (a step
grows values by at most 3) keeps the per-frame work to four operations.
"""

from __future__ import annotations

import numpy as np

from .balls import FLOAT64, LD, LIBM_ULPS, LONG_DOUBLE, Ball, Precision, quiet
from .exact_ops import two_sum_error
from .ctc_lattice import Problem, finals, frame_shifts, gathered, path_counts, samples_of, skips
from .compiled_kernels import kernels, known, known_total
from .engine import ESTIMATE_ULPS, Evaluated, Known, certify, parallel_map, row_chunks
from .formats import FORMATS, Format

SLACK = 1 + 2.0 ** -40  # for the rounding of the bound's own few operations
CHUNK_CELLS = 1 << 21  # lattice cells (or outputs) per chunk: a dozen arrays of them in memory
RESCALE_EVERY = 8  # frames between rescalings (a step grows values by at most 3)
ABSOLUTE = 2.0 ** -1072  # half float64's smallest subnormal per rounding below its range, twice
DEEP_MARGIN = 64.0  # binades kept between exp(x) and its underflow, as sequence.DEEP_MARGIN


def applies(fmt: Format) -> bool:
    """Whether this tier covers results rounded to ``fmt``: 8 or more bits narrower than
    float64 (float32, float16, bfloat16)."""
    return fmt.precision + 8 <= 53


def precisions_for(fmt: Format) -> tuple:
    """The tiers' precisions for results rounded to ``fmt``: float64, then for float32 long
    double for the samples float64 left."""
    return (FLOAT64,) if fmt.precision <= 16 else (FLOAT64, LONG_DOUBLE)


def gradient(p: Problem, possible: np.ndarray, upstream: np.ndarray, divisors: np.ndarray,
             fmt: Format) -> Known | None:
    """The samples' gradients (N, T, C), upstream_n / divisors_n times the occupancy of each
    class, certified per sample where these tiers can (None where they do not apply)."""
    frames, batch, classes = p.log_probs.shape
    if batch == 0 or frames == 0:
        return None
    if fmt == FORMATS["float64"]:
        return float64_gradient(p, possible, upstream, divisors) if kernels() else None
    if not applies(fmt):
        return None
    forward, backward, _ = path_counts(p)
    width = frames * max(p.labels.shape[1], classes)
    rounded = np.zeros((batch, frames, classes))
    exact = np.zeros((batch, frames, classes), LD)
    ok = np.zeros(batch, dtype=bool)
    tiers = {}
    todo = np.arange(batch)
    for precision in precisions_for(fmt):
        def chunk(rows: slice, precision=precision, todo=todo):
            chosen = todo[rows]
            return chosen, _samples_gradient(
                samples_of(p, chosen), forward[:, chosen], backward[:, chosen],
                possible[chosen], upstream[chosen], divisors[chosen], precision, fmt)

        for chosen, part in parallel_map(chunk, row_chunks(len(todo), width, CHUNK_CELLS)):
            rounded[chosen], exact[chosen], ok[chosen] = part
        tiers[precision.name] = int(ok[todo].sum()) * frames * classes
        todo = todo[~ok[todo]]
        if not len(todo):
            break
    return Known(rounded, exact, ok, tiers)


def float64_gradient(p: Problem, possible: np.ndarray, upstream: np.ndarray,
                     divisors: np.ndarray) -> Known:
    """The gradient rounded to float64: the recursions in double-double, one relative bound
    per sample (``double_double.ctc_gradient_samples``), for samples by chunks on the
    reference's threads. Float64 and long double balls leave every element of a typical
    sample (their bound, about 1e-15 relative at 64 frames, is wider than a 64th of a float64
    ulp), so arb took them all (1e5 input elements/s)."""
    dd = kernels()
    frames, batch, classes = p.log_probs.shape
    lp = np.ascontiguousarray(np.moveaxis(gathered(p), 1, 0))  # (N, T, W)
    shift = np.ascontiguousarray(frame_shifts(p).T)
    skip, final = skips(p), finals(p)
    out_hi, out_lo = np.zeros((batch, frames, classes)), np.zeros((batch, frames, classes))
    ok = np.zeros(batch, dtype=bool)
    upstream = np.ascontiguousarray(upstream, dtype=np.float64)

    def chunk(c: slice):
        dd.ctc_gradient_samples(lp[c], shift[c], skip[c], final[c], p.labels[c],
                                p.input_lengths[c], upstream[c], divisors[c], possible[c],
                                ESTIMATE_ULPS, *dd.exp_constants(), out_hi[c], out_lo[c],
                                ok[c])

    parallel_map(chunk, row_chunks(batch, frames * lp.shape[2], CHUNK_CELLS // 8))
    return known(out_hi, out_lo, ok)


def float64_loss(p: Problem, possible: np.ndarray, divisors: np.ndarray,
                 reduction: str) -> Evaluated | None:
    """The losses ('none'; 0 for impossible samples) or their total ('sum', 'mean': each loss
    over its divisor) rounded to float64, from the forward recursion in double-double
    (``double_double.ctc_loss_samples``); None unless every one is certified, or where numba
    does not import: the engine then computes them all. Long double balls certified them at 3e6
    input elements/s."""
    dd = kernels()
    frames, batch, _ = p.log_probs.shape
    if dd is None or batch == 0 or frames == 0:
        return None
    lp = np.ascontiguousarray(np.moveaxis(gathered(p), 1, 0))
    shift = np.ascontiguousarray(frame_shifts(p).T)
    skip, final = skips(p), finals(p)
    each = np.ones(batch) if reduction != "mean" else np.asarray(divisors, np.float64)
    hi, lo, error = np.empty(batch), np.empty(batch), np.empty(batch)
    ok = np.zeros(batch, dtype=bool)
    estimate = ESTIMATE_ULPS if reduction == "none" else 0.0

    def chunk(c: slice):
        dd.ctc_loss_samples(lp[c], shift[c], skip[c], final[c], p.input_lengths[c], possible[c],
                            each[c], estimate, *dd.exp_constants(), hi[c], lo[c], error[c],
                            ok[c])

    parallel_map(chunk, row_chunks(batch, frames * lp.shape[2], CHUNK_CELLS // 8))
    result = known(hi, lo, ok) if reduction == "none" else known_total(hi, lo, error, None)
    return result.whole()


def _rescaled(values, running, precision) -> np.ndarray:
    """Scale each running sample's row of ``values`` (n, W) in place so that its largest lies
    in [0.5, 1), by an exact power of two; return the exponents taken out (n,), 0 where the
    sample is not running or its largest value is not normal."""
    top = values.max(axis=1)
    _, e = np.frexp(top)
    e = np.where(running & (top >= precision.tiny), e, 0).astype(np.int64)
    values *= np.ldexp(precision.dtype(1), -e)[:, None]
    return e


def _forward(probs, skip, running, precision):
    """(alpha (T, n, W) rescaled, the exponents each frame's rescaling took out (T, n));
    alpha frozen at frames t >= L_in, where no rescaling happens."""
    frames, batch, states = probs.shape
    padded = np.zeros((frames + 1, batch, states + 2), precision.dtype)  # two zero states first
    padded[0, :, 2] = 1  # the virtual frame before frame 0: one unit of mass in state 0
    skip = skip.astype(precision.dtype)
    rescaling = np.zeros((frames, batch), np.int64)
    for t in range(frames):
        previous, current = padded[t], padded[t + 1, :, 2:]
        np.add(previous[:, 2:], previous[:, 1:-1], out=current)
        current += previous[:, :-2] * skip
        current *= probs[t]
        if not running[t].all():
            current[~running[t]] = previous[~running[t], 2:]
        if t % RESCALE_EVERY == RESCALE_EVERY - 1:
            rescaling[t] = _rescaled(current, running[t], precision)
    return padded[1:, :, 2:], rescaling


def _backward(probs, skip, ends, running, precision):
    """(beta' (T, n, W) rescaled: frame t's excludes frame t's own factor, the exponents the
    rescaling of frame t - 1's took out (T, n; 0 at frame 0))."""
    frames, batch, states = probs.shape
    betas = np.empty((frames, batch, states), precision.dtype)
    betas[-1] = ends
    rescaling = np.zeros((frames, batch), np.int64)
    weighted = np.zeros((batch, states + 2), precision.dtype)  # two zero states last
    skipped_to = np.zeros((batch, states + 2), precision.dtype)
    skipped_to[:, :states] = skip
    skipped_to = skipped_to[:, 2:]  # at state s: whether state s + 2 may be entered from s
    for t in range(frames - 1, 0, -1):
        current, previous = betas[t], betas[t - 1]
        np.multiply(current, probs[t], out=weighted[:, :states])
        np.add(weighted[:, :states], weighted[:, 1:-1], out=previous)
        previous += weighted[:, 2:] * skipped_to
        if not running[t].all():
            previous[~running[t]] = current[~running[t]]
        if t % RESCALE_EVERY == 0:
            rescaling[t] = _rescaled(previous, running[t], precision)
    return betas, rescaling


def _underflowed(values, positive, floor) -> np.ndarray:
    """Where a computed value is below ``floor`` (a normal number) though the exact one is
    positive: it underflowed. (A computed value is exactly zero wherever the exact one is: the
    zeros come from zero probabilities through sums and products.)"""
    return positive & (values < floor)


def _samples_gradient(p: Problem, forward_counts, backward_counts, possible, upstream, divisors,
                      precision: Precision, fmt: Format):
    """(rounded (n, T, C), estimates (n, T, C), ok (n,)) for one chunk of samples."""
    values, relative, valid = sample_balls(p, forward_counts, backward_counts, possible,
                                           upstream, divisors, precision)
    # a zero is exact (a class no state of a path reaches, or a zero upstream gradient): only
    # the others need their balls certified
    live = values != 0
    radius = (np.abs(values[live])
              * np.broadcast_to(relative[:, None, None], values.shape)[live] + ABSOLUTE)
    rounded = np.zeros(values.shape)
    rounded[live], certified = certify(Ball(values[live], radius), fmt)
    uncertified = np.zeros(values.shape, dtype=bool)
    uncertified[live] = ~certified
    ok = valid & ~uncertified.any(axis=(1, 2))
    return rounded, values.astype(LD), ok


def sample_balls(p: Problem, forward_counts, backward_counts, possible, upstream, divisors,
                 precision: Precision):
    """(values (n, T, C) float64, relative (n,), valid (n,)) for samples of a problem, their
    path counts (``ctc_lattice.path_counts``), whether each is possible, upstream gradients
    and divisors: where valid, each exact gradient lies within |value| relative + ABSOLUTE of
    its value, computed in ``precision``."""
    dtype, u, tiny = precision.dtype, precision.unit_roundoff, precision.tiny
    u1 = u / (1 - LIBM_ULPS * u)
    frames, batch, classes = p.log_probs.shape
    states = p.labels.shape[1]
    running = np.arange(frames)[:, None] < p.input_lengths[None]  # (T, n)
    lp = gathered(p)  # (T, n, W)
    finite = np.isfinite(lp)
    with quiet():
        shift = np.broadcast_to(frame_shifts(p).astype(dtype)[..., None], lp.shape)
        lp_wide = lp.astype(dtype, copy=False)
        x = np.where(finite, lp_wide - shift, 0)
        inexact = two_sum_error(lp_wide, -shift, x) != 0  # only these carry u |x|
        probs = np.exp(x)
    probs[~finite] = 0
    deep = float(np.log(precision.tiny)) + DEEP_MARGIN
    unsupported = running[..., None] & (np.isnan(lp) | (lp == np.inf) | (x < deep))
    valid = possible & np.isfinite(upstream) & ~unsupported.any(axis=(0, 2))

    skip = skips(p)
    alphas, forward_rescaling = _forward(probs, skip, running, precision)
    betas, backward_rescaling = _backward(probs, skip, finals(p), running, precision)

    # underflow: the forward's products before and after their rescaling, the backward's
    # products (the same operands as in the loop: the same values), and the occupancies (at
    # least 4 tiny, so that their quotients by the total, below 2, are normal too)
    with quiet():
        floor = np.ldexp(dtype(tiny), np.maximum(-forward_rescaling, 0))[..., None]
        products = betas[1:] * probs[1:]
        occupancy = alphas * betas
    underflow = (_underflowed(alphas, forward_counts > 0, floor)
                 | _underflowed(betas, backward_counts > 0, tiny)
                 | _underflowed(occupancy, (forward_counts > 0) & (backward_counts > 0),
                                4 * tiny))
    underflow[1:] |= _underflowed(products, (backward_counts[1:] > 0) & finite[1:], tiny)
    valid &= ~(underflow & running[..., None]).any(axis=(0, 2))

    # each class's occupancy, the sum over its states at the running frames: the blank's
    # (every even state) in one reduction, then the labels' one state at a time
    occupancy = np.moveaxis(np.where(running[..., None], occupancy, 0), 1, 0)  # (n, T, W)
    by_class = np.zeros((batch, frames, classes), dtype)
    by_class[:, :, p.blank] = occupancy[:, :, 0::2].sum(axis=2)
    samples = np.arange(batch)
    for s in range(1, states, 2):  # no index repeats within one call: one state per sample
        by_class[samples, :, p.labels[:, s]] += occupancy[:, :, s]

    # times -g / d / P and 2^(alpha's exponents to t + beta's after t - alpha's to the end),
    # the exact occupancy's scale, as one factor per frame; the total P has at most two
    # nonzero terms
    total = (alphas[-1] * finals(p)).sum(axis=1)
    alpha_scale = np.cumsum(forward_rescaling, axis=0)
    beta_scale = np.cumsum(backward_rescaling[::-1], axis=0)[::-1] - backward_rescaling
    scale = (alpha_scale + beta_scale - alpha_scale[-1]).T  # (n, T)
    with quiet():
        quotient = upstream.astype(dtype) / divisors.astype(dtype) / np.where(valid, total, 1)
        factor = np.ldexp(quotient[:, None], scale)  # (n, T)
        # an occupancy is at most 1: float64 from here on, its underflow an absolute error
        values = (by_class * factor[:, :, None]).astype(np.float64)
    normal = (np.abs(factor) >= tiny) & np.isfinite(factor)
    valid &= (upstream == 0) | (normal.all(axis=1) & (np.abs(quotient) >= tiny))

    frame_bound = (3 + LIBM_ULPS - np.where(inexact, x, 0).min(axis=2, initial=0)) * u1
    working = 2 * np.where(running, frame_bound, 0).sum(axis=0) + (states + 4) * u1
    u64 = FLOAT64.unit_roundoff / (1 - FLOAT64.unit_roundoff)
    total_bound = (working.astype(np.float64) + u64) * SLACK  # (n,)
    with quiet():  # a bound beyond 709 is inf: those rows are left to the later tiers
        relative = np.expm1(total_bound) * SLACK
    return values, relative, valid
