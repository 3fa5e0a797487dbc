"""The ctc_loss lattice: a call's arguments in one normal form, its states and transitions, and
which of its cells an alignment of positive probability reaches, decided exactly.

For one sample with log-probabilities lp (T x C), input length L_in, target labels l_1..l_S and
blank b, the extended labels are l' = (b, l_1, b, l_2, ..., l_S, b) (2S + 1 states). A path
visits one state per frame t < L_in, starting in state 0 or 1, each step staying, moving by
one, or skipping one blank (s - 2 -> s, allowed when l'_s != b and l'_s != l'_{s-2}), and ends
in state 2S or 2S - 1. The references of ``sequence`` (ball tiers) and ``sequence_fast`` (plain
arithmetic) both read the lattice from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Problem:
    """ctc_loss's arguments in one normal form: batched log-probs and padded extended labels."""

    log_probs: np.ndarray  # (T, N, C) float64
    labels: np.ndarray  # (N, 2 * S_max + 1) extended labels, blank in unused states
    input_lengths: np.ndarray  # (N,) int
    target_lengths: np.ndarray  # (N,) int
    blank: int
    unbatched: bool
    memo: dict = field(default_factory=dict, repr=False)  # results of paths()

    @property
    def states(self) -> np.ndarray:
        """Number of extended states of each sample, 2 S + 1."""
        return 2 * self.target_lengths + 1


def _lengths(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def target_lists(targets, target_lengths, batch: int) -> list:
    """The label sequence of each sample: rows of a padded (N, S) target cut at their length,
    or consecutive segments of a 1-D concatenated one (a 1-D target of an unbatched call is
    one sample's padded row)."""
    t = np.asarray(targets).astype(np.int64)
    lengths = _lengths(target_lengths)
    if t.ndim == 2:
        return [t[n, :lengths[n]] for n in range(batch)]
    if batch == 1 and lengths.size == 1:
        return [t[:lengths[0]]]
    ends = np.cumsum(lengths)
    return [t[end - length:end] for end, length in zip(ends, lengths)]


def problem(log_probs, targets, input_lengths, target_lengths, blank=0) -> Problem:
    """The normal form of a call (the arguments torch takes; lengths as ints, tuples or arrays)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    unbatched = lp.ndim == 2
    if unbatched:
        lp = lp[:, None, :]
    batch = lp.shape[1]
    il, tl = _lengths(input_lengths), _lengths(target_lengths)
    rows = target_lists(targets, tl, batch)
    width = 2 * int(tl.max(initial=0)) + 1
    labels = np.full((batch, width), blank, dtype=np.int64)
    for n, row in enumerate(rows):
        labels[n, 1:2 * len(row):2] = row
    return Problem(lp, labels, il, tl, int(blank), unbatched)


def skips(p: Problem) -> np.ndarray:
    """(N, states) booleans: state s may be entered from s - 2."""
    lab = p.labels
    skip = np.zeros(lab.shape, dtype=bool)
    skip[:, 2:] = (lab[:, 2:] != p.blank) & (lab[:, 2:] != lab[:, :-2])
    return skip


def finals(p: Problem) -> np.ndarray:
    """(N, states) booleans: the states a complete path may end in."""
    s = np.arange(p.labels.shape[1])
    last = p.states[:, None] - 1
    return (s == last) | ((s == last - 1) & (last >= 1))


def starts(p: Problem) -> np.ndarray:
    """(N, states): the virtual state before frame 0, one unit of mass in state 0.

    With it every frame, the first included, is one step of the same recursion."""
    start = np.zeros(p.labels.shape)
    start[:, 0] = 1.0
    return start


def gathered(p: Problem) -> np.ndarray:
    """(T, N, states) log-probability of each state's label at each frame."""
    index = np.broadcast_to(p.labels[None], (p.log_probs.shape[0],) + p.labels.shape)
    return np.take_along_axis(p.log_probs, index, axis=2)


def path_counts(p: Problem):
    """Forward and backward path counts per frame, clipped at 2 (exact for 0, 1, many):
    (T, N, states) each, over the transitions of nonzero probability (the forward count
    includes frame t, the backward one excludes it), and the count before frame 0."""
    if "counts" not in p.memo:
        p.memo["counts"] = _count_paths(p)
    return p.memo["counts"]


def _count_paths(p: Problem):
    # small integers (at most 3 x 2 before clipping) in place, in padded arrays: no copies
    nonzero = (gathered(p) > -np.inf).astype(np.int8)
    skip = skips(p).astype(np.int8)
    frames, batch, states = nonzero.shape
    running = np.arange(frames)[:, None] < p.input_lengths[None]  # (T, N)
    padded = np.zeros((frames + 1, batch, states + 2), np.int8)  # two zero states first
    padded[0, :, 2:] = starts(p)
    for t in range(frames):
        previous, current = padded[t], padded[t + 1, :, 2:]
        np.add(previous[:, 2:], previous[:, 1:-1], out=current)
        current += previous[:, :-2] * skip
        current *= nonzero[t]
        np.minimum(current, 2, out=current)
        if not running[t].all():
            current[~running[t]] = previous[~running[t], 2:]
    backward = np.empty((frames, batch, states), np.int8)
    weighted = np.zeros((batch, states + 2), np.int8)  # two zero states last
    skipped_to = np.zeros((batch, states + 2), np.int8)
    skipped_to[:, :states] = skip
    skipped_to = skipped_to[:, 2:]  # at state s: whether state s + 2 may be entered from s
    d = finals(p).astype(np.int8)
    for t in range(frames - 1, -1, -1):
        backward[t] = d
        np.multiply(d, nonzero[t], out=weighted[:, :states])
        step = weighted[:, :states] + weighted[:, 1:-1]
        step += weighted[:, 2:] * skipped_to
        np.minimum(step, 2, out=step)
        d = step if running[t].all() else np.where(running[t][:, None], step, d)
    return padded[1:, :, 2:], backward, d


def paths(p: Problem):
    """(possible (N,), unique (N,), on_path (T, N, states)): exactly whether a path of
    positive probability exists, whether it is the only one, and the states it visits."""
    if "paths" not in p.memo:
        forward, backward, before = path_counts(p)
        total = np.minimum((before * starts(p).astype(np.int64)).sum(axis=1), 2)
        p.memo["paths"] = total > 0, total == 1, (forward * backward) > 0
    return p.memo["paths"]


def possible(p: Problem) -> np.ndarray:
    """(N,) exactly whether a path of positive probability exists."""
    return paths(p)[0]


def shift_states(a: np.ndarray, k: int, up: bool = False) -> np.ndarray:
    """a moved k states along the last axis (towards higher states unless ``up``), 0-filled."""
    out = np.zeros_like(a)
    if k >= a.shape[-1]:
        return out
    if up:
        out[..., :-k] = a[..., k:]
    else:
        out[..., k:] = a[..., :-k]
    return out


def frame_shifts(p: Problem) -> np.ndarray:
    """(T, N) the largest finite log-probability of each frame (0 where none is finite)."""
    lp = p.log_probs
    top = np.where(np.isfinite(lp), lp, -np.inf).max(axis=2, initial=-np.inf)
    return np.where(np.isfinite(top), top, 0.0)


def samples_of(p: Problem, chosen: np.ndarray) -> Problem:
    """The problem restricted to the samples ``chosen`` (their own memo)."""
    return Problem(p.log_probs[:, chosen], p.labels[chosen], p.input_lengths[chosen],
                   p.target_lengths[chosen], p.blank, p.unbatched)
