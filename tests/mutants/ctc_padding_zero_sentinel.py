"""ctc_loss that reads padded targets by dropping zeros (padding assumed to be 0) instead of
cutting each row at its target length.

Class: [C2] padding masks (sentinel hard-coded). KNOWN_BUGS C2 (B01/B05: hard-coded padding
sentinels).
Trigger: padded 2-D targets whose padding is not 0 (-1, 99, a real label), or with a label 0
(blank != 0).
Symptom: padding values aligned as labels (wrong loss), or label 0 dropped. Exact for 1-D
targets and for zero padding with blank 0.
"""
import numpy as np

from conformance.builtin import numpy_sequence as base

FRAMEWORK = "numpy"


def _divisors(tl, reduction):
    if reduction != "mean":
        return np.ones(tl.shape)
    return np.maximum(tl, 1) * float(tl.size)


def _rows(targets, rows):
    t = np.asarray(targets)
    if t.ndim != 2:
        return rows
    return [r[r != 0] for r in t]  # BUG: 0 taken as the padding, target_lengths unused


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    lp, rows, il, tl, unbatched = base._parse(log_probs, targets, input_lengths,
                                              target_lengths, blank, reduction)
    rows = _rows(targets, rows)
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
    rows = _rows(targets, rows)
    losses, occupancy = base._recursions(lp, rows, il, blank)
    g = np.broadcast_to(np.asarray(grad_output, np.float64).reshape(-1), tl.shape)
    grad = -(g / _divisors(tl, reduction))[None, :, None] * occupancy
    running = np.arange(lp.shape[0])[:, None] < il[None]
    grad = np.where((running & np.isinf(losses)[None] & (not zero_infinity))[..., None],
                    np.nan, grad)
    return {"log_probs": (grad[:, 0] if unbatched else grad).astype(log_probs.dtype)}
