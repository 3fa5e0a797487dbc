"""multilabel_soft_margin_loss autograd.Function whose backward computes sigmoid as e^x/(1+e^x).

Class: [C4, C7] extreme values in the backward pass. KNOWN_BUGS B28 (gradient saturation),
B35 (pytorch#1516), B22 (forward and backward computed differently).
Trigger: |x| > 88.7 (float32), > 709.8 (float64), > 11.1 (float16): exp overflows to inf.
Symptom: input gradient NaN (inf/inf) while the forward loss (log-sigmoid) is exact.
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def _sigmoid(z):
    e = torch.exp(z)
    return e / (1 + e)  # BUG: inf / inf = NaN once exp overflows


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
        gx = ((1 - y) * _sigmoid(x) - y * _sigmoid(-x)) * wt * s
        gy = -x * wt * s  # d/dy [softplus(x) - y*x] = -x
        gw = None if w is None else (u * s).reshape(-1, C).sum(0)
        return gx, gy, gw, None


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    return _MLSM.apply(input, target, weight, reduction)
