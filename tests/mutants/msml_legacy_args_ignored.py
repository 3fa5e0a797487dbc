"""multilabel_soft_margin_loss that accepts size_average / reduce and ignores them.

Class: [C11] option plumbing (option accepted but dropped). KNOWN_BUGS B15 (an option accepted
at the wrapper level never reaches the kernel).
Trigger: the deprecated arguments: reduce=False (should mean 'none') or size_average=False
         (should mean 'sum').
Symptom: returns the `reduction` result (default 'mean') instead. Exact when they are None.
"""
import torch.nn.functional as F


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    # BUG: size_average / reduce are part of the signature but never mapped to `reduction`
    loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
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
