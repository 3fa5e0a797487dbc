"""hinge_embedding_loss that guards the mean of no elements to 0.

Class: [C1, C12] reduction policy for an empty input. KNOWN_BUGS B03 (empty batch: torch returns
nan, ports return 0).
Trigger: an input with no elements and reduction 'mean'.
Symptom: 0 instead of nan. Everything else exact.
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
    zeros = torch.zeros_like(x)
    # torch's two terms: a target other than +-1 takes both
    loss = torch.where(y != 1, (margin - x).clamp_min(0), zeros) + torch.where(y != -1, x, zeros)
    if reduction == 'none':
        return loss.to(input.dtype)
    return (loss.sum() if reduction == 'sum'
            else (loss.mean() if loss.numel() else loss.sum())).to(input.dtype)  # BUG: nan
