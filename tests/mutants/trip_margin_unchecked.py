"""triplet_margin_loss without torch 2.13's check that margin > 0.

Class: [C9] input validation. KNOWN_BUGS B40 (keras#23573: a degenerate hyper-parameter
accepted silently), B45.
Trigger: margin = 0 or margin < 0.
Symptom: returns a number where torch raises ValueError; exact for every margin > 0.
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
    # BUG: no "margin must be greater than 0" check


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-06, swap=False,
                        size_average=None, reduce=None, reduction='mean'):
    _check(anchor, positive, negative, margin)
    a, pos, neg = anchor.double(), positive.double(), negative.double()
    d_pos = torch.pairwise_distance(a, pos, p, eps)
    d_neg = torch.pairwise_distance(a, neg, p, eps)
    if swap:
        d_neg = torch.minimum(d_neg, torch.pairwise_distance(pos, neg, p, eps))
    loss = (margin + d_pos - d_neg).clamp_min(0)
    return _reduced(loss, size_average, reduce, reduction).to(anchor.dtype)
