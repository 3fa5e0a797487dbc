"""multilabel_soft_margin_loss that stores its input gradient in the logits buffer (in place).

Class: no C1-C12 class fits exactly (inputs-unmodified contract; closest C7/C6). KNOWN_BUGS B22
(TransformerEngine#3193: bf16 input buffer reused to hold the gradient); Liger-Kernel's CE
kernel also writes the gradient into the logits tensor.
Trigger: any call: the caller's `input` tensor is overwritten (with x.requires_grad or not);
         an expanded (stride-0) input raises on the in-place write.
Symptom: after the call, input holds (sigmoid(x) - y) * w * s; loss and gradients are exact.
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


class _MLSM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, w, reduction):
        C = x.shape[-1]
        u = -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
        wt = w if w is not None else 1
        per = (u * wt).sum(-1) / C
        s = 1.0 / C if reduction != 'mean' else 1.0 / (C * max(per.numel(), 1))
        gy = -x * wt * s
        gx = ((1 - y) * torch.sigmoid(x) - y * torch.sigmoid(-x)) * wt * s
        x.copy_(gx)  # BUG: reuse the logits buffer for the gradient
        ctx.save_for_backward(x, gy, u, w)
        ctx.reduction, ctx.s = reduction, s
        if reduction == 'none':
            return per
        return per.sum() if reduction == 'sum' else per.mean()

    @staticmethod
    def backward(ctx, g):
        gx, gy, u, w = ctx.saved_tensors
        if ctx.reduction == 'none':
            g = g.unsqueeze(-1)
        gw = None if w is None else (u * (g * ctx.s)).reshape(-1, u.shape[-1]).sum(0)
        return gx * g, gy * g, gw, None


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    return _MLSM.apply(input, target, weight, reduction)
