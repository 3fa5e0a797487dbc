"""gaussian_nll_loss that adds eps to var instead of clamping var at eps.

Class: [C11] formula / convention. KNOWN_BUGS B46 (pytorch PR #190058: eps clamps var,
max(var, eps), although the docs said it is added; a port that adds it diverges).
Trigger: any var, visibly where var is of the order of eps or below (var-below-eps cases), and
in float64 / float32 for any var (a relative change eps / var).
Symptom: log(var + eps) and r^2 / (var + eps) instead of max(var, eps): e.g. var = 0 gives
log(1e-6) either way, but var = 1e-6 gives log(2e-6) instead of log(1e-6).
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
    v = v + eps  # BUG: eps added, not a clamp
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
