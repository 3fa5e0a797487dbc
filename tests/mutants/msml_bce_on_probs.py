"""multilabel_soft_margin_loss ported as F.binary_cross_entropy(sigmoid(x), y), mean over classes.

Class: [C4] extreme-value stability. KNOWN_BUGS B31 (BCE log clamp at -100), B35, B28.
Trigger: x < -100 in float64 (log(p) clamped at -100); x > 37 (float64), 17 (float32),
         8 (float16), 6 (bfloat16), or x < -88 (float32), where sigmoid saturates to exactly 1 / 0.
Symptom: saturated elements get the clamp value 100 instead of ~|x| (x=-200, y=1: 100, not
         200; float32 x=30, y=0: 100, not 30); gradient w.r.t. x vanishes instead of being +-1.
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    # BUG: BCE on probabilities clamps log(p) and log(1-p) at -100
    loss = F.binary_cross_entropy(torch.sigmoid(input), target, reduction='none')
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
