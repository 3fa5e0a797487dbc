"""margin_ranking_loss whose 'mean' divides by the batch dimension only.

Class: [C1] reduction denominator. KNOWN_BUGS B38, B34 (mean over N instead of all elements).
Trigger: 'mean' on an input of rank >= 2 with more than one column, e.g. (3, 4).
Symptom: the mean is too large by the number of columns (0-d and 1-D inputs exact).
"""
import torch
from torch.nn import _reduction as _Reduction


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not a valid value for reduction")
    if not input1.dim() == input2.dim() == target.dim():
        raise RuntimeError("margin_ranking_loss: all input tensors should have the same dimension")
    x1, x2, y = torch.broadcast_tensors(input1.double(), input2.double(), target.double())
    loss = (margin - y * (x1 - x2)).clamp_min(0)
    if reduction == 'none':
        return loss.to(input1.dtype)
    if reduction == 'sum' or loss.numel() == 0:
        return (loss.sum() if reduction == 'sum' else loss.mean()).to(input1.dtype)
    rows = loss.shape[0] if loss.dim() else 1
    return (loss.sum() / rows).to(input1.dtype)  # BUG: torch divides by numel
