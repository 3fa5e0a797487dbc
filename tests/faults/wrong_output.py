"""torch's pointwise losses, each returning the wrong kind of object for reduction='sum'
(l1_loss for 'none' instead: a tensor on another device)."""
import torch
import torch.nn.functional as torch_functional
from widened import widened

wide_huber_loss = widened(torch_functional.huber_loss)
wide_l1_loss = widened(torch_functional.l1_loss)
wide_mse_loss = widened(torch_functional.mse_loss)
wide_smooth_l1_loss = widened(torch_functional.smooth_l1_loss)
wide_soft_margin_loss = widened(torch_functional.soft_margin_loss)


def _wrong(loss, convert):
    def function(input, target, *args, reduction="mean", **kwargs):
        out = loss(input, target, *args, reduction=reduction, **kwargs)
        return convert(out) if reduction == "sum" else out
    function.__name__ = loss.__name__
    return function


def l1_loss(input, target, *args, reduction="mean", **kwargs):
    out = wide_l1_loss(input, target, *args, reduction=reduction, **kwargs)
    return torch.empty_like(out, device="meta") if reduction == "none" else out


mse_loss = _wrong(wide_mse_loss, lambda out: out.item())
huber_loss = _wrong(wide_huber_loss, lambda out: [out.item()])
smooth_l1_loss = _wrong(wide_smooth_l1_loss, lambda out: None)
soft_margin_loss = _wrong(wide_soft_margin_loss, lambda out: out.detach().numpy())
