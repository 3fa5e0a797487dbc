"""multilabel_soft_margin_loss with a "no NaN on empty batch" guard in the mean.

Class: [C1, C12] reduction denominator / degenerate-case policy. KNOWN_BUGS B03 (torch returns
NaN = 0/0 for an empty batch with 'mean'; ports and trainers guard it to 0).
Trigger: N = 0 with reduction='mean'.
Symptom: returns 0 instead of NaN. Everything else is exact (denominator is N when N >= 1).
"""
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    C = input.size(-1)
    loss = loss.sum(dim=-1) / C
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        if loss.numel() == 0:  # BUG: "avoid NaN on an empty batch"
            return loss.sum()
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
