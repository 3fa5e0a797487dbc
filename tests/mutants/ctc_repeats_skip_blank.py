"""ctc_loss whose alignment lets a label skip the blank before a repeat of itself.

Class: [C11] formula. KNOWN_BUGS B44 (repeats needing blanks: input_len < target_len +
number of repeats must be impossible).
Trigger: a target with two equal neighbours (e.g. [1, 1]).
Symptom: paths that merge the repeat are counted: loss too small, finite where torch gives
inf (input length = target length). Exact for targets without repeats.
"""
import numpy as np

from conformance.builtin import numpy_sequence as base

FRAMEWORK = "numpy"


def _divisors(tl, reduction):
    if reduction != "mean":
        return np.ones(tl.shape)
    return np.maximum(tl, 1) * float(tl.size)


@np.errstate(all="ignore")
def _recursions(lp, rows, il, blank):
    """(losses (N,), occupancy (T, N, C)) in float64 log space."""
    frames, batch, classes = lp.shape
    width = 2 * max((len(r) for r in rows), default=0) + 1
    ext = np.full((batch, width), blank, dtype=np.int64)
    for n, row in enumerate(rows):
        ext[n, 1:2 * len(row):2] = row
    skip = np.zeros(ext.shape, dtype=bool)
    skip[:, 2:] = ext[:, 2:] != blank  # BUG: a repeated label may skip the blank between
    states = np.arange(width)
    last = 2 * np.array([len(r) for r in rows])[:, None]
    ends = (states == last) | ((states == last - 1) & (last >= 1))
    lps = np.take_along_axis(lp, np.broadcast_to(ext[None], (frames,) + ext.shape), axis=2)
    running = np.arange(frames)[:, None] < il[None]

    alpha = np.empty(lps.shape)
    a = np.where(states == 0, 0.0, -np.inf) * np.ones((batch, 1))
    for t in range(frames):
        step = np.logaddexp(np.logaddexp(a, base._shifted(a, 1, -np.inf)),
                            np.where(skip, base._shifted(a, 2, -np.inf), -np.inf)) + lps[t]
        a = np.where(running[t][:, None], step, a)
        alpha[t] = a
    losses = -np.logaddexp.reduce(np.where(ends, a, -np.inf), axis=1)

    beta = np.empty(lps.shape)
    b = np.where(ends, 0.0, -np.inf)
    for t in range(frames - 1, -1, -1):
        beta[t] = b
        w = b + lps[t]
        step = np.logaddexp(np.logaddexp(w, base._shifted(w, 1, -np.inf, up=True)),
                            base._shifted(np.where(skip, w, -np.inf), 2, -np.inf, up=True))
        b = np.where(running[t][:, None], step, b)

    gamma = np.exp(alpha + beta + losses[None, :, None])
    gamma = np.where(running[..., None] & np.isfinite(losses)[None, :, None], gamma, 0.0)
    onehot = (ext[:, :, None] == np.arange(classes)).astype(np.float64)
    return losses, np.einsum("tns,nsc->tnc", gamma, onehot)


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    lp, rows, il, tl, unbatched = base._parse(log_probs, targets, input_lengths,
                                              target_lengths, blank, reduction)
    losses, _ = _recursions(lp, rows, il, blank)
    if zero_infinity:
        losses = np.where(np.isinf(losses), 0.0, losses)
    if reduction == "none":
        out = losses[0] if unbatched else losses
    else:
        out = (losses / _divisors(tl, reduction)).sum()
    return np.asarray(out).astype(log_probs.dtype)


def ctc_loss_vjp(grad_output, log_probs, targets, input_lengths, target_lengths, blank=0,
                 reduction="mean", zero_infinity=False):
    lp, rows, il, tl, unbatched = base._parse(log_probs, targets, input_lengths,
                                              target_lengths, blank, reduction)
    losses, occupancy = _recursions(lp, rows, il, blank)
    g = np.broadcast_to(np.asarray(grad_output, np.float64).reshape(-1), tl.shape)
    grad = -(g / _divisors(tl, reduction))[None, :, None] * occupancy
    running = np.arange(lp.shape[0])[:, None] < il[None]
    grad = np.where((running & np.isinf(losses)[None] & (not zero_infinity))[..., None],
                    np.nan, grad)
    return {"log_probs": (grad[:, 0] if unbatched else grad).astype(log_probs.dtype)}
