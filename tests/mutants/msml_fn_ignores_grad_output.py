"""Fused multilabel_soft_margin_loss whose backward returns the precomputed gradient unscaled.

Class: [C7] upstream gradient ignored. KNOWN_BUGS B43 (cuDNN CTC ignores grad_out,
pytorch#21961), B40 (chainer#1178: backward ignored gy), B19.
Trigger: any upstream gradient != 1: loss*k, random per-sample grad for 'none', loss**2, etc.
Symptom: gradients are those of loss.backward() with grad 1 (per row for 'none'); forward exact.
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


class _FusedMLSM(torch.autograd.Function):
    """Liger-style: the gradients (for an upstream gradient of 1) are computed in the forward."""

    @staticmethod
    def forward(ctx, x, y, w, reduction):
        C = x.shape[-1]
        u = -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
        wt = w if w is not None else 1
        per = (u * wt).sum(-1) / C
        s = 1.0 / C if reduction != 'mean' else 1.0 / (C * max(per.numel(), 1))
        gx = ((1 - y) * torch.sigmoid(x) - y * torch.sigmoid(-x)) * wt * s
        gy = -x * wt * s
        gw = None if w is None else (u * s).reshape(-1, C).sum(0)
        ctx.save_for_backward(gx, gy, gw)
        if reduction == 'none':
            return per
        return per.sum() if reduction == 'sum' else per.mean()

    @staticmethod
    def backward(ctx, grad_output):
        gx, gy, gw = ctx.saved_tensors
        return gx, gy, gw, None  # BUG: grad_output never applied


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    return _FusedMLSM.apply(input, target, weight, reduction)
