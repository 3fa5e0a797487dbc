"""smooth_l1_loss as an autograd.Function whose backward ignores the upstream gradient.

Class: [C7] backward. KNOWN_BUGS B40 (chainer/chainer#1178: SmoothL1 backward ignored gy), B43.
Trigger: any upstream gradient other than 1 (a scalar g != 1 for 'mean' / 'sum', per element
         for 'none').
Symptom: input and target gradients are those for g = 1. Loss exact.
"""
import torch
from torch.nn import _reduction as _Reduction


class _SmoothL1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, beta, reduction):
        r = x.double() - y.double()
        z = r.abs()
        loss = z if beta == 0 else torch.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta)
        ctx.save_for_backward(r)
        ctx.beta, ctx.reduction, ctx.dtype = beta, reduction, x.dtype
        if reduction == 'none':
            return loss.to(x.dtype)
        return (loss.sum() if reduction == 'sum' else loss.mean()).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (r,) = ctx.saved_tensors
        beta = ctx.beta
        slope = torch.sign(r) if beta == 0 else torch.clamp(r / beta, -1, 1)
        if ctx.reduction == 'mean':
            slope = slope / r.numel()
        grad = slope  # BUG: should be slope * g
        return grad.to(ctx.dtype), (-grad).to(ctx.dtype), None, None


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction='mean', beta=1.0):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("smooth_l1_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if not beta >= 0:
        raise ValueError("smooth_l1_loss does not support negative values for beta")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    return _SmoothL1.apply(input, target, float(beta), reduction)
