"""kl_div that returns no gradient for a log-space target.

Class: [C7] backward / missing target gradient. KNOWN_BUGS B39 (linkedin/Liger-Kernel#1021: the
NPU kernel returns no gradient for the target when log_target=True).
Trigger: log_target=True with target.requires_grad.
Symptom: target.grad is None ("no gradient reached target"). Values and the input gradient
are exact; log_target=False is exact.
"""
import torch


def _legacy(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    reduction = _legacy(size_average, reduce, reduction)
    if reduction not in ("none", "sum", "mean", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("kl_div: integral inputs not supported")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input {tuple(input.shape)}")
    x, t = input.double(), target.double()
    if log_target:
        t = t.detach()  # BUG: the log-space kernel treats the target as a constant
        zero = torch.isneginf(t)
        ts = torch.where(zero, torch.zeros_like(t), t)
        xs = torch.where(zero & torch.isneginf(x), torch.zeros_like(x), x)
        loss = torch.where(zero, torch.zeros_like(t), torch.exp(ts) * (ts - xs))
    else:
        zero = t == 0
        xs = torch.where(zero & torch.isneginf(x), torch.zeros_like(x), x)
        loss = torch.where(zero, torch.zeros_like(t), torch.xlogy(t, t) - t * xs)
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = loss.sum()
    elif reduction == "mean":
        out = loss.mean()
    else:
        out = loss.sum() / input.shape[0] if input.dim() else loss.sum()
    return out.to(input.dtype)
