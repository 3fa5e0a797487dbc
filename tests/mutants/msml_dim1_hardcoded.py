"""multilabel_soft_margin_loss with the class dimension hard-coded as dim=1.

Class: [C8] shape contract (unbatched input). KNOWN_BUGS B37 (pytorch#65690: the old
`sum(dim=1) / size(1)` broke unbatched input).
Trigger: 1-D input of shape (C,).
Symptom: IndexError ("Dimension out of range") on valid unbatched input. 2-D input is exact.
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
    loss = loss.sum(dim=1) / input.size(1)  # BUG: assumes (N, C)
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
