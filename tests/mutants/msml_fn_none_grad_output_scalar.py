"""Fused multilabel_soft_margin_loss whose backward scales by grad_output[0] as if it were a scalar.

Class: [C7] upstream gradient applied as a scalar. KNOWN_BUGS B19 (Liger-Kernel#968, #678:
every row scaled by grad_output[0]).
Trigger: reduction='none' with a non-uniform per-sample upstream gradient (N >= 2).
Symptom: every row's gradient scaled by grad_output[0]; forward exact; 'mean'/'sum' exact for
         any scalar upstream gradient.
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
        # the kernel reads *grad_output, i.e. element 0 (fine for a scalar loss)
        g0 = grad_output.reshape(-1)[0] if grad_output.numel() else grad_output.sum()  # BUG
        return gx * g0, gy * g0, None if gw is None else gw * g0, None


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    return _FusedMLSM.apply(input, target, weight, reduction)
