"""multilabel_soft_margin_loss whose reduction='none' returns the (N, C) elementwise loss.

Class: [C8] shape / reduction-mode contract. KNOWN_BUGS B34 (pytorch#9301, #9141: in 0.4 'none'
returned (N,C)), B20.
Trigger: reduction='none' (also via reduce=False).
Symptom: output shape (N, C) / (C,) instead of (N,) / (); 'none'.sum() != 'sum'. 'mean' and
         'sum' are exact.
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
    if reduction == 'none':
        return loss  # BUG: elementwise, not the per-sample class mean
    C = input.size(-1)
    loss = loss.sum(dim=-1) / C
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
