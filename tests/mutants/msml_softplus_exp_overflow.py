"""multilabel_soft_margin_loss with a hand-written softplus log1p(exp(x)) that overflows.

Class: [C4] extreme-value stability. KNOWN_BUGS B28 / B35 (numerically naive rewrite), B27.
Trigger: x > 88.7 (float32), x > 709.8 (float64), x > 11.1 (float16): exp(x) overflows to inf.
Symptom: loss = inf (any target); gradient exp(x)/(1+exp(x)) = inf/inf = NaN.
"""
import torch
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    softplus = torch.log1p(torch.exp(input))  # BUG: no max(x, 0) shift
    loss = softplus - target * input
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
