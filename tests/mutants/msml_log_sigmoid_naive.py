"""multilabel_soft_margin_loss through log(sigmoid(x)) and log(1 - sigmoid(x)) (probability space).

Class: [C4] extreme-value stability. KNOWN_BUGS B28 (naive sigmoid->log), B35 (torch#1516).
Trigger: saturated logits: x >~ 17 (float32), 37 (float64), 6 (bfloat16), 8 (float16), or
         x < -88 (float32); accuracy already degrades well before, where 1 - sigmoid(x) cancels.
Symptom: inf loss (y=0) or NaN loss (y=1, 0 * -inf); NaN / zero gradients.
"""
import torch
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    p = torch.sigmoid(input)
    loss = -(target * torch.log(p) + (1 - target) * torch.log(1 - p))  # BUG: not log-sigmoid
    if weight is not None:
        loss = loss * weight
    C = input.size(-1)
    loss = loss.sum(dim=-1) / C
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
