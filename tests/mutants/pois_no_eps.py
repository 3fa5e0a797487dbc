"""poisson_nll_loss with log_input=False taking log(input) without eps.

Class: [C4] extreme values (rate 0). KNOWN_BUGS B45 (pytorch/pytorch#3336: input 0 gives nan/inf).
Trigger: log_input=False with a rate 0 (or a rate of the order of eps or below).
Symptom: loss inf (0 - y log 0) and input gradient -inf where the exact value is finite.
Exact for log_input=True and rates far above eps (to the tolerance).
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
        loss = x - y * torch.log(x)  # BUG: eps dropped
    if full:
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
