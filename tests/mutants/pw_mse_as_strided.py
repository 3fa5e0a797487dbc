"""mse_loss "kernel" that reads input and target as packed row-major storage.

Class: [C10] layout (stride assumptions). KNOWN_BUGS B11 (pytorch#67167 silently wrong on
transposed logits; TransformerEngine#2734: a guard that checked only stride(-1)).
Trigger: a non-contiguous input, target or weight: transposed, stride-2 sliced, expanded.
Symptom: elements read from the wrong storage positions: silently wrong loss and gradients
         (an expanded view whose storage is too small raises). Exact for contiguous tensors.
"""
import torch
from torch.nn import _reduction as _Reduction


def _as_kernel_sees_it(t):
    strides, step = [], 1
    for n in reversed(t.shape):
        strides.insert(0, step)
        step *= n
    return torch.as_strided(t, t.shape, strides)  # BUG: ignores t.stride()


def mse_loss(input, target, size_average=None, reduce=None, reduction='mean', weight=None):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("mse_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    x, y = _as_kernel_sees_it(input).double(), _as_kernel_sees_it(target).double()
    loss = (x - y) ** 2
    if weight is not None:
        loss = loss * _as_kernel_sees_it(weight)
    if reduction == 'none':
        return loss.to(input.dtype)
    if reduction == 'sum':
        return loss.sum().to(input.dtype)
    divisor = weight.double().sum() if weight is not None else loss.numel()
    return (loss.sum() / divisor).to(input.dtype)
