"""Exact reference for the sequence family: ctc_loss.

For one sample with log-probabilities lp (T x C), input length L_in, target labels l_1..l_S and
blank b, the extended labels are l' = (b, l_1, b, l_2, ..., l_S, b) (2S + 1 states). A path
visits one state per frame t < L_in, starting in state 0 or 1, each step staying, moving by
one, or skipping one blank (s - 2 -> s, allowed when l'_s != b and l'_s != l'_{s-2}), and ends
in state 2S or 2S - 1 (``ctc_lattice`` reads this lattice from a call). P is the sum over
paths of prod_t exp(lp[t, l'_s(t)]), and the loss is -log P: +inf where no path has positive
probability (an impossible alignment, or -inf log-probabilities on every path); 0 for
L_in = 0 and S = 0 (the empty path).

The alpha (forward) and beta (backward) recursions run in long double balls on probabilities
shifted by the per-frame maximum log-probability and rescaled by exact powers of two after
every frame (exponents kept as exact integers), so nothing under- or overflows; vectorised
over samples and states, sequential over frames. The derivative of the loss with respect to
lp[t, n, k] is minus the posterior occupancy of class k at frame t, sum over the states s
with label k of alpha_t(s) beta'_t(s) / P (beta' excludes frame t's own factor), for t < L_in;
0 at frames t >= L_in and for classes no state carries. Which samples are impossible is
decided exactly (a boolean recursion on which probabilities are nonzero) before any
arithmetic, so +inf losses and their undefined (nan) gradients never enter the engine.
"""

from __future__ import annotations

import math

import flint
import numpy as np

from . import sequence_fast
from .balls import LD, Ball
from .ctc_lattice import (Problem, finals, frame_shifts, gathered, paths, possible, problem,
                          samples_of, shift_states, skips, starts)
from .engine import Evaluated, evaluate, filled, is_ball_backend
from .formats import FORMATS, Format


# --- backend helpers (long double balls, or arb objects in the slow pass) ------------------------

def _bshift(a, k: int, up: bool = False):
    """shift_states for either backend (arb object arrays fill with the exact integer 0)."""
    if isinstance(a, Ball):
        return Ball(shift_states(a.mid, k, up), shift_states(a.rad, k, up))
    return shift_states(a, k, up)


def _rescaled(a):
    """(a times 2**-e per row, e): the largest midpoint of each row brought into [0.5, 1).

    Exact (a power of two); arb needs no rescaling and gets e = 0."""
    if not isinstance(a, Ball):
        return a, np.zeros(a.shape[:-1], dtype=np.int64)
    dtype = a.precision.dtype
    top = a.mid.max(axis=-1, initial=dtype(0))
    _, e = np.frexp(np.where(top > 0, top, dtype(1)))
    e = e.astype(np.int64)
    factor = np.ldexp(dtype(1), -e)[..., None]
    return Ball(a.mid * factor, a.rad * factor), e


def _times_power_of_two(a, e):
    """a * 2**e, elementwise integer exponents (0 for arb, which was never rescaled).

    ldexp on midpoint and radius: exact unless the result leaves long double's normal range,
    where a unit of its smallest normal is added to the radius."""
    if not isinstance(a, Ball):
        return a
    e = np.broadcast_to(np.asarray(e, dtype=np.int64), a.mid.shape)
    with np.errstate(under="ignore", over="ignore"):
        return Ball(np.ldexp(a.mid, e), np.ldexp(a.rad, e) + a.precision.tiny)


def _log(B, a):
    """Natural log of positive balls: log1p of the mantissa in [0.5, 1) plus e log 2 (an
    infinite radius where the ball reaches 0)."""
    if not isinstance(a, Ball):
        return np.frompyfunc(lambda v: flint.arb(v).log(), 1, 1)(a)
    dtype = a.precision.dtype
    positive = a.mid - a.rad > 0
    mantissa, e = np.frexp(np.where(positive, a.mid, dtype(1)))
    rad = np.where(positive, np.ldexp(a.rad, -e), dtype(np.inf))
    ln2 = B.log1p(B.asarray(np.ones(())))
    return B.log1p(Ball(mantissa, rad) - 1) + ln2 * e.astype(np.float64)


def _final_total(B, p: Problem, final):
    """(N,) the sum of the final alphas over the end states, by plain ball additions (the
    engine's exact sum splits into doubles, which would lose long double's tiny values)."""
    ends = finals(p)
    total = B.where(ends[:, 0], final[:, 0], 0.0)
    for s in range(1, ends.shape[1]):
        total = total + B.where(ends[:, s], final[:, s], 0.0)
    return total


def _lift(B, values):
    """Exact constants (float64 / LD numpy arrays) as the backend's type."""
    return B.asarray(values)


# --- the recursions ------------------------------------------------------------------------------

def _forward(B, p: Problem, probs):
    """Scaled alphas per frame (list of (N, states)), their cumulative exponents, and the final
    scaled alpha (frozen at each sample's input length)."""
    skip, active = skips(p), p.input_lengths
    a = _lift(B, starts(p))
    exponent = np.zeros(p.labels.shape[0], dtype=np.int64)
    alphas, exponents = [], []
    for t in range(p.log_probs.shape[0]):
        step = (a + _bshift(a, 1) + B.where(skip, _bshift(a, 2), 0.0)) * probs[t]
        step, e = _rescaled(step)
        running = t < active
        a = B.where(running[:, None], step, a)
        exponent = exponent + np.where(running, e, 0)
        alphas.append(a)
        exponents.append(exponent.copy())
    return alphas, exponents, a, exponent


def _backward(B, p: Problem, probs):
    """Scaled beta' per frame (excluding the frame's own factor) and cumulative exponents."""
    skip = skips(p)
    b = _lift(B, finals(p).astype(np.float64))
    exponent = np.zeros(p.labels.shape[0], dtype=np.int64)
    frames = p.log_probs.shape[0]
    betas, exponents = [None] * frames, [None] * frames
    for t in range(frames - 1, -1, -1):
        betas[t], exponents[t] = b, exponent.copy()
        if t == 0:
            break
        weighted = b * probs[t]
        step = weighted + _bshift(weighted, 1, up=True) + _bshift(
            B.where(skip, weighted, 0.0), 2, up=True)
        step, e = _rescaled(step)
        running = t < p.input_lengths  # frame t is part of the sample: step back over it
        b = B.where(running[:, None], step, b)
        exponent = exponent + np.where(running, e, 0)
    return betas, exponents


DEEP_MARGIN = 64.0


def _state_probabilities(B, p):
    """(T, N, states) exp(lp - shift) of each state's label (shift: the frame's largest lp),
    and the shifts. Exactly 0 for lp = -inf; in long double, the ball [0, smallest normal]
    where lp - shift < DEEP (exp would underflow; arb computes those exactly)."""
    shift = frame_shifts(p)
    lp_states = gathered(p)
    finite = np.isfinite(lp_states)
    ball = is_ball_backend(B)
    deep_below = float(np.log(B.precision.tiny)) + DEEP_MARGIN if ball else -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        deep = finite & (lp_states - shift[..., None] < deep_below)
    exponent = _lift(B, np.where(finite & ~deep, lp_states, 0.0)) - _lift(
        B, np.where(deep, 0.0, shift[..., None]))
    probs = B.where(finite, B.exp(exponent), 0.0)
    if deep.any():
        tiny = B.precision.tiny
        probs = Ball(np.where(deep, 0, probs.mid), np.where(deep, tiny, probs.rad))
    return probs, shift


def _sample_losses(B, p: Problem, ok):
    """Per-sample losses (N,) as balls; exact 0 where not ``ok`` (handled by the caller)."""
    probs, shift = _state_probabilities(B, p)
    _, _, final, exponent = _forward(B, p, probs)
    total = _final_total(B, p, final)
    used = np.arange(p.log_probs.shape[0])[:, None] < p.input_lengths[None]
    shifted = B.sum(_lift(B, np.where(used, shift, 0.0)), axis=0)
    ln2 = B.log1p(B.asarray(np.ones(())))
    losses = -(_log(B, B.where(ok, total, 1.0)) + ln2 * exponent.astype(np.float64) + shifted)
    # A single path's loss is a plain sum of inputs, often a tie of the format: summed exactly.
    _, unique, on_path = paths(p)
    used = on_path & (np.arange(p.log_probs.shape[0])[:, None, None]
                      < p.input_lengths[None, :, None])
    along = np.where(used, gathered(p), 0.0).sum(axis=2).T  # (N, T): one state per frame
    single = -B.sum(_lift(B, along), axis=1) if along.shape[1] else _lift(B, np.zeros(len(ok)))
    return B.where(ok, B.where(unique, single, losses), 0.0)


def estimates(p: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(losses (N,), occupancy (T, N, C)) of a Problem: float64 estimates to size tolerances
    with (``log_space_estimates``)."""
    rows = [p.labels[n, 1:2 * int(p.target_lengths[n]):2] for n in range(p.labels.shape[0])]
    return log_space_estimates(p.log_probs, rows, p.input_lengths, p.blank)


def _shifted(a, k, fill, up=False):
    """a moved k states along the last axis (towards higher states unless ``up``), filled."""
    out = np.full_like(a, fill)
    if k < a.shape[-1]:
        if up:
            out[..., :-k] = a[..., k:]
        else:
            out[..., k:] = a[..., :-k]
    return out


@np.errstate(all="ignore")  # -inf log-probabilities and +inf losses are intended
def log_space_estimates(lp, rows, il, blank):
    """(losses (N,), occupancy (T, N, C)) by the forward-backward recursions in float64 log
    space: estimates, not certified (the spec sizes tolerances with them, and the built-in numpy
    candidate computes with them), from log-probabilities (T, N, C), target lists, input lengths
    and the blank. +inf losses and zero occupancy where no alignment exists."""
    frames, batch, classes = lp.shape
    width = 2 * max((len(r) for r in rows), default=0) + 1
    ext = np.full((batch, width), blank, dtype=np.int64)
    for n, row in enumerate(rows):
        ext[n, 1:2 * len(row):2] = row
    skip = np.zeros(ext.shape, dtype=bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    states = np.arange(width)
    last = 2 * np.array([len(r) for r in rows])[:, None]
    ends = (states == last) | ((states == last - 1) & (last >= 1))
    lps = np.take_along_axis(lp, np.broadcast_to(ext[None], (frames,) + ext.shape), axis=2)
    running = np.arange(frames)[:, None] < il[None]

    alpha = np.empty(lps.shape)
    a = np.where(states == 0, 0.0, -np.inf) * np.ones((batch, 1))
    for t in range(frames):
        step = np.logaddexp(np.logaddexp(a, _shifted(a, 1, -np.inf)),
                            np.where(skip, _shifted(a, 2, -np.inf), -np.inf)) + lps[t]
        a = np.where(running[t][:, None], step, a)
        alpha[t] = a
    losses = -np.logaddexp.reduce(np.where(ends, a, -np.inf), axis=1)

    beta = np.empty(lps.shape)
    b = np.where(ends, 0.0, -np.inf)
    for t in range(frames - 1, -1, -1):
        beta[t] = b
        w = b + lps[t]
        step = np.logaddexp(np.logaddexp(w, _shifted(w, 1, -np.inf, up=True)),
                            _shifted(np.where(skip, w, -np.inf), 2, -np.inf, up=True))
        b = np.where(running[t][:, None], step, b)

    gamma = np.exp(alpha + beta + losses[None, :, None])
    gamma = np.where(running[..., None] & np.isfinite(losses)[None, :, None], gamma, 0.0)
    onehot = (ext[:, :, None] == np.arange(classes)).astype(np.float64)
    return losses, np.einsum("tns,nsc->tnc", gamma, onehot)


def _divisors(p: Problem, reduction: str) -> np.ndarray:
    """What each sample's loss (and gradient) is divided by under the reduction."""
    if reduction != "mean":
        return np.ones(p.labels.shape[0])
    return np.maximum(p.target_lengths, 1).astype(np.float64) * p.labels.shape[0]


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False, *, fmt: Format) -> Evaluated:
    """The exact ctc_loss, reduced, rounded once to fmt ('mean': each loss over max(S, 1),
    then the batch mean; +inf losses stay +inf, or are 0 with zero_infinity)."""
    p = problem(log_probs, targets, input_lengths, target_lengths, blank)
    ok = possible(p)
    batch = p.labels.shape[0]
    if reduction == "mean" and batch == 0:
        return filled((), np.nan)
    # The mean as one division of an exact-integer-weighted sum: sum_n loss_n (L / d_n) / L
    # with L the lcm of the divisors d_n, so that a mean of exact sums (single alignments)
    # that is a tie of the format comes out exact from arb instead of uncertifiable.
    common = math.lcm(*(int(d) for d in _divisors(p, reduction))) if batch else 1
    multipliers = common / _divisors(p, reduction)

    def reduced(B, _):
        losses = _sample_losses(B, p, ok)
        if reduction == "none":
            return losses
        if reduction == "sum":
            return B.sum(losses)
        return B.sum(losses * multipliers) / common

    fast = (sequence_fast.float64_loss(p, ok, _divisors(p, reduction), reduction)
            if fmt == FORMATS["float64"] else None)
    result = fast if fast is not None else evaluate(reduced, [np.zeros(batch)], fmt)
    inf = ~ok & (not zero_infinity)
    if reduction == "none":
        result.rounded[inf], result.exact[inf] = np.inf, LD(np.inf)
        if p.unbatched:
            result = Evaluated(result.rounded.reshape(()), result.exact.reshape(()))
    elif inf.any():
        result = filled((), np.inf)
    return result


def _gradient_rows(B, p: Problem, ok, upstream, divisor):
    """(T, N, C) balls: upstream_n / divisor_n times the occupancy of each class (0 where none
    is possible). The quotient is the engine's: -g / (N L) rounded in float64 beforehand was
    up to half an ulp of a float64 result off, far more than the estimates may be."""
    frames, batch, classes = p.log_probs.shape
    used = np.arange(frames)[:, None] < p.input_lengths[None]  # (T, N)
    onehot = p.labels[:, :, None] == np.arange(classes)  # (N, states, C)
    probs, _ = _state_probabilities(B, p)
    alphas, a_exp, final, final_exp = _forward(B, p, probs)
    betas, b_exp = _backward(B, p, probs)
    total = B.where(ok, _final_total(B, p, final), 1.0)
    rows = []
    for t in range(frames):
        occupancy = alphas[t] * betas[t]  # (N, states), scaled by 2**-(a_exp + b_exp)
        per_class = _by_class(B, occupancy, onehot)
        scale = np.where(ok, a_exp[t] + b_exp[t] - final_exp, 0)
        ratio = _times_power_of_two(per_class / B.reshape(total, (batch, 1)), scale[:, None])
        live = (used[t] & ok)[:, None] & onehot.any(axis=1)
        rows.append(B.where(live, ratio * upstream[:, None] / divisor[:, None], 0.0))
    return _stack(B, rows)


def _by_class(B, occupancy, onehot):
    """(N, C) sums over the states of each label of (N, states) nonnegative balls.

    Long double: one einsum of the midpoints and of the radii; a sum of n nonnegative terms
    rounded n - 1 times errs by at most 2 n u of the computed sum, added to the radius."""
    if isinstance(occupancy, Ball):
        precision = occupancy.precision
        u = precision.unit_roundoff
        weights = onehot.astype(precision.dtype)
        mid = np.einsum("ns,nsc->nc", occupancy.mid, weights)
        rad = np.einsum("ns,nsc->nc", occupancy.rad, weights)
        terms = onehot.sum(axis=1)
        return Ball(mid, rad * (1 + 2 * terms * u) + 2 * terms * u * np.abs(mid)
                    + precision.tiny)
    total = None
    for s in range(onehot.shape[1]):
        column = B.where(onehot[:, s, :], occupancy[:, s][:, None], 0.0)
        total = column if total is None else total + column
    return total


def _sample_indices(index) -> np.ndarray:
    """Sample numbers carried as an engine argument (balls or arb objects) back as ints."""
    if isinstance(index, Ball):
        return index.mid.astype(np.int64)
    return np.array([int(float(v.mid())) for v in np.asarray(index).reshape(-1)], np.int64)


def _batch_first(values):
    """(T, N, C) engine values as (N, T, C): one row per sample."""
    if isinstance(values, Ball):
        return Ball(np.moveaxis(values.mid, 1, 0), np.moveaxis(values.rad, 1, 0))
    return np.moveaxis(values, 1, 0)


def _stack(B, rows):
    """Stack per-frame (N, C) results into (T, N, C) for either backend."""
    if isinstance(rows[0], Ball):
        return Ball(np.stack([r.mid for r in rows]), np.stack([r.rad for r in rows]))
    return np.stack([np.asarray(r, dtype=object) for r in rows])


def _upstream(grad_output, batch: int) -> np.ndarray:
    """The upstream gradient per sample: a scalar ('mean', 'sum') broadcast over the batch."""
    g = np.asarray(grad_output, np.float64).reshape(-1)
    return np.broadcast_to(g, (batch,)) if g.size == 1 else g


def ctc_loss_grad(grad_output, log_probs, targets, input_lengths, target_lengths, blank=0,
                  reduction="mean", zero_infinity=False, *, fmt: Format) -> Evaluated:
    """The exact gradient with respect to log_probs for the upstream gradient, rounded to fmt:
    -g_n / divisor_n times the posterior occupancy of each class, nan at the frames t < L_in of
    a sample with an infinite loss (0 there with zero_infinity), 0 at frames t >= L_in."""
    p = problem(log_probs, targets, input_lengths, target_lengths, blank)
    ok = possible(p)
    frames, batch, classes = p.log_probs.shape
    out_shape = (frames, classes) if p.unbatched else (frames, batch, classes)
    if frames == 0 or batch == 0:
        return filled(out_shape, 0.0)
    upstream, divisors = -_upstream(grad_output, batch), _divisors(p, reduction)

    def samples_first(B, index):
        # the samples are independent: a later tier recomputes only those left uncertified
        chosen = _sample_indices(index)
        part = _gradient_rows(B, samples_of(p, chosen), ok[chosen], upstream[chosen],
                              divisors[chosen])
        return _batch_first(part)

    # about one chunk per thread: the recursion's Python steps are paid once per chunk
    result = evaluate(samples_first, [np.arange(batch, dtype=np.float64)], fmt,
                      independent="rows", width=frames * classes,
                      chunk_elements=max(batch * frames * classes, 1),
                      known=sequence_fast.gradient(p, ok, upstream, divisors, fmt))
    rounded, exact = (np.moveaxis(v, 0, 1) for v in (result.rounded, result.exact))
    used = np.arange(frames)[:, None] < p.input_lengths[None]
    undefined = used & (~ok & (not zero_infinity))[None]
    rounded[undefined], exact[undefined] = np.nan, LD(np.nan)
    return Evaluated(rounded.reshape(out_shape), exact.reshape(out_shape))
