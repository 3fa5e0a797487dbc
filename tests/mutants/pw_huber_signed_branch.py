"""huber_loss choosing its branch on the signed residual, r < delta, instead of |r| < delta.

Class: [C11] formula (Huber branch). KNOWN_BUGS B40 (marlbenchmark/on-policy#47: linear branch
selected with e > d instead of |e| > d, so large negative errors are mishandled).
Trigger: a residual x - y <= -delta.
Symptom: those elements take the quadratic branch, 0.5 r^2 instead of delta (|r| - delta / 2),
         with gradient r instead of -delta. Exact where x - y > -delta.
"""
import torch


def huber_loss(input, target, reduction='mean', delta=1.0, weight=None):
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("huber_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if not delta > 0:
        raise ValueError("huber_loss does not support non-positive values for delta")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    r = input.double() - target.double()
    loss = torch.where(r < delta, 0.5 * r * r, delta * (r.abs() - 0.5 * delta))  # BUG: not |r|
    if weight is not None:
        loss = loss * weight
    if reduction == 'none':
        return loss.to(input.dtype)
    return (loss.sum() if reduction == 'sum' else loss.mean()).to(input.dtype)
