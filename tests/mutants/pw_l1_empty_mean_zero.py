"""l1_loss with a "no NaN on an empty batch" guard in the mean.

Class: [C1, C12] reduction denominator / degenerate-case policy. KNOWN_BUGS B03 (torch returns
NaN = 0/0 for the mean of no elements; ports and trainers guard it to 0).
Trigger: an input with no elements (a 0 in its shape) and reduction='mean'.
Symptom: 0 instead of NaN. Everything else exact.
"""
from torch.nn import _reduction as _Reduction


def l1_loss(input, target, size_average=None, reduce=None, reduction='mean', weight=None):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("l1_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    loss = (input.double() - target.double()).abs()
    if weight is not None:
        loss = loss * weight
    if reduction == 'none':
        return loss.to(input.dtype)
    if reduction == 'sum':
        return loss.sum().to(input.dtype)
    divisor = weight.double().sum() if weight is not None else max(loss.numel(), 1)  # BUG
    return (loss.sum() / divisor).to(input.dtype)  # ("avoid NaN on an empty batch")
