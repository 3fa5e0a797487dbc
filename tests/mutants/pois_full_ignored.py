"""poisson_nll_loss that accepts full and never adds the Stirling term.

Class: [C11] option plumbing. KNOWN_BUGS B15 (option dropped), B45 (pytorch/pytorch#28575: the
full term computed wrong).
Trigger: full=True with a target above 1.
Symptom: the loss lacks y log y - y + log(2 pi y) / 2, the target gradient log y + 1/(2y).
Exact for full=False or targets <= 1.
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
    if False:  # BUG: full is accepted and never applied
        on = y > 1
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
