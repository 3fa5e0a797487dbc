"""kl_div written from the formula with log(t) instead of xlogy: 0 log 0 becomes nan.

Class: [C5] -inf masks and 0 log 0. KNOWN_BUGS B39 (linkedin/Liger-Kernel#259 and #262, needed
an eps for log(0); google-deepmind/optax#1786).
Trigger: a zero target probability (one-hot or masked targets), log_target=False.
Symptom: loss nan (0 * -inf) where the exact term is 0. Exact for positive targets.
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
        loss = t * (torch.log(t) - x)  # BUG: 0 * log(0) = nan, not 0
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = loss.sum()
    elif reduction == "mean":
        out = loss.mean()
    else:
        out = loss.sum() / input.shape[0] if input.dim() else loss.sum()
    return out.to(input.dtype)
