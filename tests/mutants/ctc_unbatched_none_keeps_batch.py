"""ctc_loss that returns shape (1,) instead of () for an unbatched call with reduction='none'.

Class: [C8] shape and reduction-mode contract. KNOWN_BUGS B37, B20 (1-D / unbatched inputs).
Trigger: unbatched log_probs (T, C) with reduction='none'.
Symptom: output shape (1,), expected (). Batched calls and 'mean'/'sum' exact.
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
    lp, rows, il, tl, unbatched = base._parse(log_probs, targets, input_lengths,
                                              target_lengths, blank, reduction)
    losses, _ = base._recursions(lp, rows, il, blank)
    if zero_infinity:
        losses = np.where(np.isinf(losses), 0.0, losses)
    if reduction == "none":
        out = losses  # BUG: the batch axis of an unbatched call kept
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
