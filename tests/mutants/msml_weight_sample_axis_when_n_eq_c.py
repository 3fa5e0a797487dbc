"""multilabel_soft_margin_loss that guesses the weight's axis from its length.

Class: [C3, C8] weight on the wrong axis / broadcasting changes meaning. KNOWN_BUGS B33, B36.
Trigger: 2-D input with N == C and a non-uniform weight (the (C,) weight is taken for a
         per-sample weight because its length matches the batch).
Symptom: row n scaled by w[n] instead of column c by w[c]: wrong value and gradients.
         Correct whenever N != C, for 1-D input, and for uniform weights.
"""
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    if weight is not None:
        if loss.dim() == 2 and weight.size(0) == loss.size(0):
            loss = loss * weight.unsqueeze(-1)  # BUG: "per-sample weight"
        else:
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
