"""poisson_nll_loss adding the Stirling term where target >= 1 instead of > 1.

Class: [C11] formula (Stirling threshold). KNOWN_BUGS B45 (PaddlePaddle/Paddle#56733 and #56992:
the Stirling term added for labels on the wrong side of 1).
Trigger: full=True with a target exactly 1.
Symptom: the term 1 log 1 - 1 + log(2 pi) / 2 = -0.081 is added at y = 1, and the target
gradient gains 0.5. Exact for targets other than 1 and for full=False.
"""
import math

import torch


def _legacy(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction="mean"):
    reduction = _legacy(size_average, reduce, reduction)
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input {tuple(input.shape)}")
    x, y = input.double(), target.double()
    if log_input:
        loss = torch.exp(x) - y * x
    else:
        loss = x - y * torch.log(x + eps)
    if full:
        on = y >= 1  # BUG: the Stirling approximation applies for y > 1 only
        ys = torch.where(on, y, torch.full_like(y, 2.0))
        stirling = ys * torch.log(ys) - ys + 0.5 * torch.log(2 * math.pi * ys)
        loss = loss + torch.where(on, stirling, torch.zeros_like(y))
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = loss.sum()
    else:
        out = loss.mean()
    return out.to(input.dtype)
