"""hinge_embedding_loss with a hand-written backward that reads the upstream gradient as a scalar.

Class: [C7] backward / upstream gradient. KNOWN_BUGS B19 (Liger-Kernel#968: with
reduction='none' every element scaled by grad_output[0]).
Trigger: reduction='none' with a non-uniform upstream gradient and at least two elements.
Symptom: every element's gradient uses the first upstream value. 'mean' / 'sum' exact.
"""
import torch
from torch.nn import _reduction as _Reduction


class _Hinge(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, margin):
        xd, yd = x.double(), y.double()
        zeros = torch.zeros_like(xd)
        ctx.save_for_backward(xd, yd)
        ctx.margin, ctx.dtype = margin, x.dtype
        loss = (torch.where(yd != 1, (margin - xd).clamp_min(0), zeros)
                + torch.where(yd != -1, xd, zeros))
        return loss.to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        slope = (y != -1).double() - ((y != 1) & (ctx.margin - x >= 0)).double()
        return (g.reshape(-1)[0].double() * slope).to(ctx.dtype), None, None  # BUG: g[0] only


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not a valid value for reduction")
    if reduction == 'none' and input.dim() > 0 and input.numel() > 1:
        return _Hinge.apply(input, target, margin)
    x, y = torch.broadcast_tensors(input.double(), target.double())
    zeros = torch.zeros_like(x)
    # torch's two terms: a target other than +-1 takes both
    loss = torch.where(y != 1, (margin - x).clamp_min(0), zeros) + torch.where(y != -1, x, zeros)
    if reduction == 'none':
        return loss.to(input.dtype)
    return (loss.sum() if reduction == 'sum' else loss.mean()).to(input.dtype)
