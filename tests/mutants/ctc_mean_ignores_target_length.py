"""ctc_loss whose 'mean' averages the per-sample losses over the batch without first dividing
each by its target length (the plain batch mean other libraries use).

Class: [C1] reduction denominator. KNOWN_BUGS C1 (B03/B34 family: the divisor of a mean);
torch divides each loss by max(target_length, 1) before the batch mean.
Trigger: reduction='mean' with any target length other than 0 or 1.
Symptom: loss and gradient too large by the target length. 'none' and 'sum' exact.
"""
import numpy as np

from conformance.builtin import numpy_sequence as base

FRAMEWORK = "numpy"


def _divisors(tl, reduction):
    return np.full(tl.shape, float(tl.size) if reduction == "mean" else 1.0)  # BUG: no / tl


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
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
