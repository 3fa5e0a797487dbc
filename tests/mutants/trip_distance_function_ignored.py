"""triplet_margin_with_distance_loss that ignores distance_function (always pairwise_distance).

Class: [C11] option plumbing. KNOWN_BUGS B15 (linkedin/Liger-Kernel#243: an option accepted
and never forwarded).
Trigger: any user distance_function (l1, relu-l1, cosine) with a row whose loss it changes.
Symptom: the loss of the default distance; exact for distance_function=None.
"""
import torch
from torch.nn import _reduction


def _reduced(loss, size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if reduction == 'mean':
        return loss.mean()
    raise ValueError(reduction + " is not a valid value for reduction")


def _check(anchor, positive, negative, margin):
    if not anchor.dim() == positive.dim() == negative.dim():
        raise RuntimeError("The anchor, positive, and negative tensors are expected to have "
                           "the same number of dimensions")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None,
                                      margin=1.0, swap=False, reduction='mean'):
    if reduction not in ('none', 'sum', 'mean'):
        raise ValueError(reduction + " is not a valid value for reduction")
    _check(anchor, positive, negative, margin)
    distance = torch.pairwise_distance  # BUG: distance_function never used
    a, pos, neg = anchor.double(), positive.double(), negative.double()
    d_pos, d_neg = distance(a, pos), distance(a, neg)
    if swap:
        d_neg = torch.minimum(d_neg, distance(pos, neg))
    loss = (margin + d_pos - d_neg).clamp_min(0)
    return _reduced(loss, None, None, reduction).to(anchor.dtype)
