"""l1_loss with a hand-written backward that takes the slope at x == y from the right.

Class: [C7, C11] backward / convention at a kink. KNOWN_BUGS B40 (gradient conventions at
input ~ target), B43.
Trigger: an element with x == y exactly (zero residual), any reduction.
Symptom: its input gradient is +g w / N and its target gradient -g w / N, where torch's
         subgradient (sign(0) = 0) gives 0. Loss exact; other elements exact.
"""
import torch
from torch.nn import _reduction as _Reduction


class _L1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, reduction):
        r = x.double() - y.double()
        ctx.save_for_backward(r)
        ctx.reduction, ctx.dtype = reduction, x.dtype
        if reduction == 'none':
            return r.abs().to(x.dtype)
        total = r.abs().sum()
        return (total if reduction == 'sum' else total / r.numel()).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (r,) = ctx.saved_tensors
        g = g.double() / (r.numel() if ctx.reduction == 'mean' else 1)
        slope = torch.where(r >= 0, 1.0, -1.0).double()  # BUG: sign(0) taken as +1
        return (slope * g).to(ctx.dtype), (-slope * g).to(ctx.dtype), None


def l1_loss(input, target, size_average=None, reduce=None, reduction='mean', weight=None):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("l1_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    if weight is not None:
        if weight.shape != input.shape:
            raise ValueError("Weights and input must have the same size.")
        loss = (input.double() - target.double()).abs() * weight
        if reduction == 'none':
            return loss.to(input.dtype)
        total = loss.sum()
        return (total if reduction == 'sum' else total / weight.double().sum()).to(input.dtype)
    return _L1.apply(input, target, reduction)
