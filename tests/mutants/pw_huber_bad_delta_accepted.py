"""huber_loss without the check on delta.

Class: [C9] input validation. KNOWN_BUGS B40 (keras-team/keras#23573: delta <= 0 silently
degenerate; PR #45532, negative beta gave wrong results).
Trigger: delta = 0, delta < 0 or delta = nan.
Symptom: returns a number (0 for delta = 0) where torch raises. Exact for every delta > 0.
"""
import torch


def huber_loss(input, target, reduction='mean', delta=1.0, weight=None):
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("huber_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    # BUG: no "delta must be positive" check
    z = (input.double() - target.double()).abs()
    loss = torch.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta))
    if weight is not None:
        loss = loss * weight
    if reduction == 'none':
        return loss.to(input.dtype)
    return (loss.sum() if reduction == 'sum' else loss.mean()).to(input.dtype)
