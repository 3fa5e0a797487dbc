"""gaussian_nll_loss without the check on negative var.

Class: [C9] input validation. KNOWN_BUGS B45/B46 area (negative variances must be rejected,
KNOWN_BUGS section 3, item 12).
Trigger: a var with a negative entry.
Symptom: returns a number (the clamp turns the negative var into eps) where torch raises
ValueError. Exact for every valid var.
"""
import math

import torch


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = var * torch.ones_like(input)
    # BUG: no check that var is nonnegative
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input {tuple(input.shape)}")
    v = var.double()
    if var.shape != input.shape:
        if var.shape == input.shape[:-1]:
            v = v.unsqueeze(-1)
        elif not (var.dim() == input.dim() and sum(
                b for a, b in zip(input.shape, var.shape) if a != b) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(reduction + " is not valid")
    v = v.clone()
    with torch.no_grad():
        v.clamp_(min=eps)
    r = input.double() - target.double()
    loss = 0.5 * (torch.log(v) + r * r / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    if reduction == "mean":
        out = loss.mean()
    elif reduction == "sum":
        out = loss.sum()
    else:
        out = loss
    return out.to(input.dtype)
