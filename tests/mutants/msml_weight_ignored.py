"""multilabel_soft_margin_loss that accepts `weight` and silently never applies it.

Class: [C3] weight handling (also C11: option dropped). KNOWN_BUGS B35 (torch/nn#949, #953: the
stable rewrite first ignored `weights`), B15.
Trigger: any weight that is not all ones.
Symptom: output identical to the unweighted loss; weight gradient missing (None).
"""
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    # stable rewrite of -(y*log(sigmoid(x)) + (1-y)*log(1-sigmoid(x)))
    loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    # BUG: `weight` is never used
    C = input.size(-1)
    loss = loss.sum(dim=-1) / C
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
