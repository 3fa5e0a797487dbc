"""multilabel_soft_margin_loss that folds the class weight into the caller's target in place.

Class: no C1-C12 class fits exactly (inputs-unmodified contract; closest C3 weight handling).
KNOWN_BUGS B30 / B33 neighbourhood (weights folded into the target term of BCE-style losses).
Trigger: weight given with some w_c != 1 (and a target with some y != 0 in that class); a target
         that is a leaf with requires_grad=True, or an expanded target view, raises instead.
Symptom: after the call the caller's target holds y * w; the loss value is still
         -(w*y*logsig(x) + (w - w*y)*logsig(-x)), i.e. right; weight=None leaves target alone.
"""
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if weight is not None:
        target.mul_(weight)  # BUG: "saves a temporary" but rewrites the caller's tensor
        loss = -(target * F.logsigmoid(input) + (weight - target) * F.logsigmoid(-input))
    else:
        loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    C = input.size(-1)
    loss = loss.sum(dim=-1) / C
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
