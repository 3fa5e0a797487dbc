"""multilabel_margin_loss (numpy-style port) that only checks the upper bound of target labels.

Class: [C9] input validation. KNOWN_BUGS B47 (targets < -1 must raise), B12.
Trigger: a target value < -1, e.g. -2: before the terminator it wraps through Python/torch
         negative indexing (-2 -> class C-2); after the terminator it is never looked at.
Symptom: a loss value instead of an error. Valid targets (and values >= C, which raise) exact.
"""
import torch
from torch.nn import _reduction as _Reduction


def _sample(x, row, C):
    stop = (row == -1).nonzero()
    k = int(stop[0, 0]) if len(stop) else C
    pos = row[:k]  # BUG: -2, -3, ... index from the end
    neg = torch.ones(C, dtype=torch.bool)
    neg[pos] = False
    z = 1 - x[pos].unsqueeze(1) + x[neg].unsqueeze(0)  # 1 - x[y_j] + x[i]
    return torch.relu(z).sum() / C


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    if input.dtype not in (torch.float32, torch.float64):
        raise RuntimeError(f"multilabel_margin_loss not implemented for {input.dtype}")
    if target.dtype != torch.int64 or target.shape != input.shape or input.dim() not in (1, 2):
        raise RuntimeError("inconsistent target size / dtype")
    C = input.size(-1)
    if (target >= C).any():  # BUG: lower bound (-1) not checked
        raise RuntimeError("argument #2 'target' is out of range")
    x, t = input.reshape(-1, C), target.reshape(-1, C)
    per = torch.stack([_sample(x[n], t[n], C) for n in range(len(x))]) if len(x) else x.sum(1)
    if input.dim() == 1:
        per = per.reshape(())
    if reduction == 'none':
        return per
    if reduction == 'sum':
        return per.sum()
    return per.mean()  # empty batch -> nan
