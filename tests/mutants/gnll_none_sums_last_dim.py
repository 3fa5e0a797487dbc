"""gaussian_nll_loss whose reduction='none' sums over the last dimension.

Class: [C8] shape and reduction contract. KNOWN_BUGS B46 (pytorch/pytorch#53964:
reduction='none' returned (N,) instead of the input's shape), B20.
Trigger: reduction='none' with an input of rank >= 1.
Symptom: output shape input.shape[:-1] instead of input.shape. 'sum' and 'mean' are exact.
"""
import math

import torch


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    if isinstance(var, float):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = var * torch.ones_like(input)
    elif torch.any(var < 0):
        raise ValueError("var has negative entry/entries")
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
        out = loss.sum(-1) if loss.dim() else loss  # BUG: per-sample loss, not per element
    return out.to(input.dtype)
