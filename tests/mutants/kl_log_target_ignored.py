"""kl_div that drops the log_target option (always treats target as probabilities).

Class: [C11] option plumbing. KNOWN_BUGS B15 (an option accepted by the wrapper that never
reaches the kernel), B39 (-inf log-targets).
Trigger: log_target=True.
Symptom: t (log t - x) on log-probabilities: nan for negative t, wrong values elsewhere.
Exact for log_target=False.
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
    if False:  # BUG: log_target is accepted and never used
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
