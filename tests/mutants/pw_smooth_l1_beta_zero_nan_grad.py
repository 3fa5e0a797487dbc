"""smooth_l1_loss written as one torch.where over both branches, for every beta.

Class: [C4, C7] extreme-value stability / backward. KNOWN_BUGS B40 (pytorch#96813: NaN gradient
when input ~ target with beta ~ 0; the fix sends beta = 0 to l1_loss).
Trigger: beta = 0 (torch's l1 case): the unselected branch 0.5 r^2 / beta is inf or nan, and
         torch.where's backward multiplies its infinite slope by 0.
Symptom: value exact (|r|), input and target gradients nan. Exact for every beta > 0.
"""
import torch
from torch.nn import _reduction as _Reduction


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction='mean', beta=1.0):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("smooth_l1_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if not beta >= 0:
        raise ValueError("smooth_l1_loss does not support negative values for beta")
    z = (input - target).abs()
    loss = torch.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta)  # BUG: no beta == 0 case
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
