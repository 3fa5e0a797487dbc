"""triplet_margin_loss with the distance written as sqrt(sum((a - b)^2)), no eps.

Class: [C4, C5] zero distance. KNOWN_BUGS B41 (tensorflow/tensorflow#30199: triplet gradient
NaN when anchor == positive).
Trigger: anchor == positive in some row (p = 2) with an active hinge; also any row, where the
missing eps shifts the distance (float64: ||a - p + eps|| vs ||a - p||).
Symptom: gradient nan (sqrt's derivative at 0 times 0); loss off by up to eps sqrt(D).
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
    d_pos = (((a - pos) ** 2).sum(-1).sqrt() if p == 2  # BUG
             else torch.pairwise_distance(a, pos, p, eps))
    d_neg = torch.pairwise_distance(a, neg, p, eps)
    if swap:
        d_neg = torch.minimum(d_neg, torch.pairwise_distance(pos, neg, p, eps))
    loss = (margin + d_pos - d_neg).clamp_min(0)
    return _reduced(loss, size_average, reduce, reduction).to(anchor.dtype)
