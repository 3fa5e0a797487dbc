"""multilabel_soft_margin_loss that selects a log-sigmoid branch per element by thresholding y.

Class: [C11] formula convention (targets assumed hard 0/1). KNOWN_BUGS B30 (agrees with torch
for hard 0/1 targets, wrong for fractional ones), B37 (target domain).
Trigger: soft / fractional targets (e.g. 0.3, label-smoothed 0.95); target.requires_grad=True.
Symptom: loss uses y' = (y > 0.5) instead of y; no gradient reaches the target (where()
         condition). Exact for targets in {0, 1}.
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    # BUG: one branch per element, so fractional targets are rounded
    loss = torch.where(target > 0.5, -F.logsigmoid(input), -F.logsigmoid(-input))
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
