"""multilabel_soft_margin_loss whose 'sum' reduction sums the elementwise loss (no / C).

Class: [C1, C8] reduction denominator. KNOWN_BUGS B34 (0.929 vs 9.29 vs 4.645 in pytorch#9301:
'mean' and 'sum' disagreed with 'none').
Trigger: reduction='sum' (or size_average=False) with C > 1.
Symptom: 'sum' is C times too large; 'none'.sum() != 'sum'. 'mean' (elementwise mean over N*C,
         which equals the mean of per-sample class means) and 'none' are exact, so a mean-only
         test passes.
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
        return loss.sum(dim=-1) / input.size(-1)
    if reduction == 'mean':
        return loss.mean()  # over N*C elements == mean over N of class means
    if reduction == 'sum':
        return loss.sum()  # BUG: sum over N*C elements, missing the / C
    raise ValueError(reduction + " is not valid")
