"""multilabel_soft_margin_loss autograd.Function with the target gradient's sign flipped.

Class: [C7] backward. KNOWN_BUGS B39 (target gradients of soft-target losses; missing or wrong
target gradient), B43 (loss right, gradient wrong).
Trigger: target.requires_grad=True (soft / distillation targets), any x != 0.
Symptom: d loss / d target = +x*w/C instead of -x*w/C. Loss and input/weight gradients exact.
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


class _MLSM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, w, reduction):
        u = -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
        per = (u * w if w is not None else u).sum(-1) / x.shape[-1]
        ctx.save_for_backward(x, y, w, u)
        ctx.reduction = reduction
        if reduction == 'none':
            return per
        return per.sum() if reduction == 'sum' else per.mean()

    @staticmethod
    def backward(ctx, g):
        x, y, w, u = ctx.saved_tensors
        C = x.shape[-1]
        if ctx.reduction == 'none':
            g = g.unsqueeze(-1)
        elif ctx.reduction == 'mean':
            g = g / x[..., 0].numel()
        s = g / C
        wt = w if w is not None else 1
        gx = ((1 - y) * torch.sigmoid(x) - y * torch.sigmoid(-x)) * wt * s
        gy = x * wt * s  # BUG: should be -x (d/dy [softplus(x) - y*x])
        gw = None if w is None else (u * s).reshape(-1, C).sum(0)
        return gx, gy, gw, None


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    return _MLSM.apply(input, target, weight, reduction)
