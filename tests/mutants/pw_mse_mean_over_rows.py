"""mse_loss whose 'mean' divides by the batch size (the first dimension), not the element count.

Class: [C1] reduction denominator. KNOWN_BUGS B38 (mean vs batchmean: dividing by the wrong
count), B34.
Trigger: reduction='mean' with input of rank >= 2 and more than one element per row.
Symptom: the mean is (numel / shape[0]) times too large, gradients likewise. Exact for 0-d and
         1-D input, and for 'none' and 'sum'.
"""
from torch.nn import _reduction as _Reduction


def mse_loss(input, target, size_average=None, reduce=None, reduction='mean', weight=None):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("mse_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    loss = (input.double() - target.double()) ** 2
    if weight is not None:
        loss = loss * weight
    if reduction == 'none':
        return loss.to(input.dtype)
    if reduction == 'sum':
        return loss.sum().to(input.dtype)
    if reduction == 'mean':
        if weight is not None:
            return (loss.sum() / weight.double().sum()).to(input.dtype)
        rows = input.shape[0] if input.dim() > 1 else input.numel()  # BUG: "per-sample mean"
        return (loss.sum() / rows).to(input.dtype)
    raise ValueError(reduction + " is not valid")
