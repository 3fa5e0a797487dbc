"""Correct forward-only candidate: torch's losses evaluated under torch.no_grad().

The outputs carry no autograd graph (requires_grad False); values are torch's. As in
torch_with_multi_hot.py, multilabel_margin_loss returns nan ('mean') or 0 ('sum') for an empty
batch (torch 2.13 CPU returns uninitialised memory there). multi_hot is a correct torch
implementation.
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
    with torch.no_grad():
        # float16 in float32: torch's float16 sum over classes overflows (deviations.py)
        dtype = input.dtype
        if dtype == torch.float16:
            input, target = input.float(), target.float()
            weight = None if weight is None else weight.float()
        return F.multilabel_soft_margin_loss(input, target, weight=weight,
                                             size_average=size_average, reduce=reduce,
                                             reduction=reduction).to(dtype)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction='mean'):
    with torch.no_grad():
        out = F.multilabel_margin_loss(input, target, size_average=size_average, reduce=reduce,
                                       reduction=reduction)
        if input.dim() == 2 and input.size(0) == 0 and out.dim() == 0:
            return _empty_batch(input, size_average, reduce, reduction)
        return out


def multi_hot(labels, num_classes, padding_value=-1):
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
    out = torch.zeros(labels.shape[0], num_classes, dtype=torch.float32)
    for i, row in enumerate(labels.tolist()):
        for v in row:
            if v == padding_value:
                continue  # padding sets nothing, wherever it is
            if not 0 <= v < num_classes:
                raise ValueError(f"label {v} out of range [0, {num_classes})")
            out[i, v] = 1.0
    return out
