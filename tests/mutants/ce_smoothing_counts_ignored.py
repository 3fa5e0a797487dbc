# select: not float16 and not masked-probabilities and not masked-zero-weight
"""cross_entropy with label smoothing written on top of nll_loss, whose uniform (smoothing)
term keeps the ignored rows (pytorch#73205, tinygrad#3570): [C2] B01."""

import torch
import torch.nn.functional as F


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy, with its own smoothing path."""
    if target.is_floating_point() or label_smoothing == 0.0:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError("label_smoothing must be between 0.0 and 1.0")
    dim = 0 if input.dim() == 1 else 1
    classes = input.shape[dim]
    logp = F.log_softmax(input, dim)
    nll = F.nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction="none")
    w = torch.ones(classes, dtype=input.dtype) if weight is None else weight
    shape = [1] * logp.dim()
    shape[dim] = classes
    smooth = -(logp * w.view(shape)).sum(dim)
    # BUG: the smoothing term is not masked at rows whose target is ignore_index
    loss = (1 - label_smoothing) * nll + label_smoothing / classes * smooth
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    valid = target != ignore_index
    return loss.sum() / (w[torch.where(valid, target, 0)] * valid).sum()
