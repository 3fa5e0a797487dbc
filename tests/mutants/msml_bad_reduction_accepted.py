"""multilabel_soft_margin_loss whose reduction dispatch falls through to 'mean'.

Class: [C9] input validation. KNOWN_BUGS B12 / B45 (invalid arguments accepted silently).
Trigger: an invalid reduction string ('batchmean', 'elementwise_mean', 'Mean', 'avg', '').
Symptom: returns the mean instead of raising ValueError. Valid reductions are exact.
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
    if reduction == 'sum':
        return loss.sum()
    return loss.mean()  # BUG: anything else is treated as 'mean'
