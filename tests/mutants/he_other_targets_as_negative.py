"""hinge_embedding_loss that takes every target other than 1 as -1 (a two-way where).

Class: [C11] formula / convention. KNOWN_BUGS B37 (targets outside {-1, 1} handled silently with
another meaning).
Trigger: a target other than +-1, e.g. y = 0 or 2 (torch adds both terms: x + max(0, m - x)).
Symptom: the hinge alone: x = 0.5, y = 0 gives 0.5 instead of 1.0. Exact for y = +-1.
"""
import torch
from torch.nn import _reduction as _Reduction


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not a valid value for reduction")
    x, y = torch.broadcast_tensors(input.double(), target.double())
    # torch's two terms: a target other than +-1 takes both
    loss = torch.where(y == 1, x, (margin - x).clamp_min(0))  # BUG: y not in {1, -1}
    if reduction == 'none':
        return loss.to(input.dtype)
    return (loss.sum() if reduction == 'sum' else loss.mean()).to(input.dtype)
