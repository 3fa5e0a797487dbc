"""gaussian_nll_loss that clamps var with autograd (torch.clamp), not under no_grad.

Class: [C7] backward. KNOWN_BUGS B46 (the clamp's gradient below eps).
Trigger: var.requires_grad with some var < eps (var-below-eps cases, var = 0).
Symptom: var's gradient 0 below eps where torch 2.13 passes the gradient of the loss at
max(var, eps) through. Values and the other gradients are exact.
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
    v = torch.clamp(v, min=eps)  # BUG: the clamp's own gradient (0 below eps) reaches var
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
