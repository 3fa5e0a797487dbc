"""mse_loss that runs its float64 inputs through a float32 "fast path".

Class: [C6] low precision. KNOWN_BUGS B50, B22 (computed in a narrower dtype than the input's).
Trigger: float64 input (any values with more than 24 significant bits).
Symptom: loss and gradients carry float32 rounding (~1e-8 relative, ~1e8 float64 ulps); the
         result dtype is still float64. Exact for float32, float16 and bfloat16 input.
"""
import torch
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
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    # BUG: float32 everywhere ("mixed precision"); float64 only for the half types' sake
    wide = torch.float32 if input.dtype == torch.float64 else torch.float64
    loss = (input.to(wide) - target.to(wide)) ** 2
    if weight is not None:
        loss = loss * weight.to(wide)
    if reduction == 'none':
        return loss.to(input.dtype)
    if reduction == 'sum':
        return loss.sum().to(input.dtype)
    divisor = weight.to(wide).sum() if weight is not None else loss.numel()
    return (loss.sum() / divisor).to(input.dtype)
