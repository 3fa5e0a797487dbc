"""ctc_loss that clamps input lengths to T instead of rejecting lengths beyond it.

Class: [C9] input validation. KNOWN_BUGS B44 (rwth-i6/returnn#1131: lengths longer than the
logits accepted silently).
Trigger: an input length greater than T (torch raises "Expected input_lengths to have value
at most T").
Symptom: returns a loss for an invalid call. Every valid call exact.
"""
import numpy as np

from conformance.builtin import numpy_sequence as base

FRAMEWORK = "numpy"


def _divisors(tl, reduction):
    if reduction != "mean":
        return np.ones(tl.shape)
    return np.maximum(tl, 1) * float(tl.size)


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    frames = log_probs.shape[0] if log_probs.ndim else 0
    input_lengths = np.minimum(np.asarray(input_lengths), frames)  # BUG: no range check
    lp, rows, il, tl, unbatched = base._parse(log_probs, targets, input_lengths,
                                              target_lengths, blank, reduction)
    losses, _ = base._recursions(lp, rows, il, blank)
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
    losses, occupancy = base._recursions(lp, rows, il, blank)
    g = np.broadcast_to(np.asarray(grad_output, np.float64).reshape(-1), tl.shape)
    grad = -(g / _divisors(tl, reduction))[None, :, None] * occupancy
    running = np.arange(lp.shape[0])[:, None] < il[None]
    grad = np.where((running & np.isinf(losses)[None] & (not zero_infinity))[..., None],
                    np.nan, grad)
    return {"log_probs": (grad[:, 0] if unbatched else grad).astype(log_probs.dtype)}
