"""smooth_l1_loss whose reduction switch sends 'none' to the mean.

Class: [C8] shape and reduction-mode contract. KNOWN_BUGS B20 (Liger-Kernel#421: reduction='none'
returns a scalar), B34.
Trigger: reduction='none' (or reduce=False) with any input of at least one dimension.
Symptom: a 0-d mean where the output should have the input's shape. 'mean' and 'sum' exact.
"""
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
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    z = (input.double() - target.double()).abs()
    loss = z if beta == 0 else (z < beta) * (0.5 * z * z / beta) + (z >= beta) * (z - 0.5 * beta)
    if reduction == 'sum':
        return loss.sum().to(input.dtype)
    return loss.mean().to(input.dtype)  # BUG: 'none' falls through to the mean
