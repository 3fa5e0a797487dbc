"""ctc_loss whose 'mean' divides each loss by its target length without clamping it at 1.

Class: [C1] reduction denominator, [C9] degenerate inputs. KNOWN_BUGS B44 (empty targets:
pytorch/pytorch#18215, #21680, backends disagree on target length 0).
Trigger: reduction='mean' with a target length 0 (an empty target).
Symptom: inf (nan for a zero loss) where torch divides by max(0, 1) = 1. Exact otherwise.
"""
import numpy as np

from conformance.builtin import numpy_sequence as base

FRAMEWORK = "numpy"


def _divisors(tl, reduction):
    if reduction != "mean":
        return np.ones(tl.shape)
    with np.errstate(divide="ignore"):
        return tl * float(tl.size)  # BUG: max(tl, 1) intended


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
