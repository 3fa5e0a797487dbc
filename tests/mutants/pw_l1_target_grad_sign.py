"""l1_loss as an autograd.Function whose target gradient has the input gradient's sign.

Class: [C7] backward. KNOWN_BUGS B39 (target gradients missing or wrong), B43 (loss right,
gradient wrong).
Trigger: target.requires_grad=True, any nonzero residual.
Symptom: d loss / d target = +sign(x - y) g w / N instead of -sign(x - y) g w / N. Loss and
         input (and weight) gradients exact.
"""
import torch
from torch.nn import _reduction as _Reduction


class _L1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, w, reduction):
        r = x.double() - y.double()
        wd = None if w is None else w.double()
        ctx.save_for_backward(r, wd)
        ctx.reduction, ctx.dtype = reduction, x.dtype
        loss = r.abs() if wd is None else r.abs() * wd
        if reduction == 'none':
            return loss.to(x.dtype)
        if reduction == 'sum':
            return loss.sum().to(x.dtype)
        divisor = r.numel() if wd is None else wd.sum()
        return (loss.sum() / divisor).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        r, w = ctx.saved_tensors
        g = g.double()
        if ctx.reduction == 'mean':
            g = g / (r.numel() if w is None else w.sum())
        scale = g if w is None else g * w
        gx = torch.sign(r) * scale
        gy = torch.sign(r) * scale  # BUG: d|x - y| / dy = -sign(x - y)
        gw = None
        if w is not None:
            gw = g * r.abs()
            if ctx.reduction == 'mean':
                gw = gw - g * (r.abs() * w).sum() / w.sum()
            gw = gw.to(ctx.dtype)
        return gx.to(ctx.dtype), gy.to(ctx.dtype), gw, None


def l1_loss(input, target, size_average=None, reduce=None, reduction='mean', weight=None):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("l1_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    return _L1.apply(input, target, weight, reduction)
