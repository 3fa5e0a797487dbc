"""kl_div whose 'batchmean' divides the sum by every element, as 'mean' does.

Class: [C1] reduction denominator. KNOWN_BUGS B38 (pytorch/pytorch#6622: 'mean' vs
'batchmean'; HikariTJU/LD#74, averaging over the class dimension too).
Trigger: reduction='batchmean' with more than one element per row (input.dim() >= 2 and
size(1) > 1, or a 1-D input, where batchmean is the sum).
Symptom: loss and gradients divided by numel instead of input.size(0). Exact for the others.
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
        out = loss.mean()  # BUG: batchmean divides by numel, not input.size(0)
    return out.to(input.dtype)
