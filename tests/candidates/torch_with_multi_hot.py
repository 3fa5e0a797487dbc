"""Correct candidate: torch's own losses plus a torch implementation of multi_hot.

multilabel_soft_margin_loss is torch.nn.functional's, computed in float32 for float16 input
(torch's float16 kernel overflows in its sum over classes; see conformance/deviations.py).
multilabel_margin_loss is torch's, except for one case: torch 2.13 (CPU) returns uninitialised
memory (e.g. 1.5e-28, 14.36, -1.9e-24, varying run to run) for an empty batch (N = 0) with reduction
'mean' or 'sum'; there the mean of no samples (nan) or their sum (0) is returned instead.
multi_hot validates labels, ignores padding anywhere in a row, counts each class once, and
accepts a padded int tensor (N, L) or a list of lists; it returns float32 (N, num_classes).
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction


def _empty_batch(input, size_average, reduce, reduction):
    """What the loss is for N = 0: the mean of no samples is nan, their sum 0."""
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    per_sample = input.sum(dim=1)  # shape (0,), attached to the graph
    return per_sample.mean() if reduction == "mean" else per_sample.sum()


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    """torch's, computed in float32 for float16 input: torch's float16 kernel sums the classes in
    float16 and overflows to inf where the loss itself is finite."""
    if input.dtype != torch.float16:
        return F.multilabel_soft_margin_loss(input, target, weight=weight,
                                             size_average=size_average, reduce=reduce,
                                             reduction=reduction)
    weight = None if weight is None else weight.float()
    return F.multilabel_soft_margin_loss(input.float(), target.float(), weight=weight,
                                         size_average=size_average, reduce=reduce,
                                         reduction=reduction).half()


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction='mean'):
    out = F.multilabel_margin_loss(input, target, size_average=size_average, reduce=reduce,
                                   reduction=reduction)
    if input.dim() == 2 and input.size(0) == 0 and out.dim() == 0:
        return _empty_batch(input, size_average, reduce, reduction)
    return out


def _as_padded(labels, padding_value):
    if torch.is_tensor(labels):
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
        labels = labels.long()
    else:
        rows = [[int(v) for v in row] for row in labels]
        width = max((len(row) for row in rows), default=0)
        labels = torch.tensor([row + [padding_value] * (width - len(row)) for row in rows],
                              dtype=torch.long).reshape(len(rows), width)
    if labels.dim() != 2:
        raise ValueError(f"labels must be 2-D (N, L), got shape {tuple(labels.shape)}")
    return labels


def multi_hot(labels, num_classes, padding_value=-1):
    labels = _as_padded(labels, padding_value)
    valid = labels != padding_value
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        raise ValueError(f"labels out of range [0, {num_classes}): "
                         f"{labels[bad].unique().tolist()}")
    out = torch.zeros(labels.shape[0], num_classes, dtype=torch.float32)
    if num_classes == 0 or labels.numel() == 0:
        return out
    out.scatter_add_(1, torch.where(valid, labels, 0), valid.to(torch.float32))
    return (out > 0).to(torch.float32)
