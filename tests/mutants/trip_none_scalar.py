"""triplet_margin_loss whose reduction='none' returns the mean.

Class: [C8] shape / reduction contract. KNOWN_BUGS B20 (Liger-Kernel#421: 'none' returned a
scalar), B34.
Trigger: reduction='none' (or reduce=False) with N >= 1 rows.
Symptom: a 0-d output where torch returns (N,); 'sum' and 'mean' exact.
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


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-06, swap=False,
                        size_average=None, reduce=None, reduction='mean'):
    _check(anchor, positive, negative, margin)
    a, pos, neg = anchor.double(), positive.double(), negative.double()
    d_pos = torch.pairwise_distance(a, pos, p, eps)
    d_neg = torch.pairwise_distance(a, neg, p, eps)
    if swap:
        d_neg = torch.minimum(d_neg, torch.pairwise_distance(pos, neg, p, eps))
    loss = (margin + d_pos - d_neg).clamp_min(0)
    if reduction == 'none' and size_average is None and reduce is None:
        return loss.mean().to(anchor.dtype)  # BUG: 'none' reduced
    return _reduced(loss, size_average, reduce, reduction).to(anchor.dtype)
