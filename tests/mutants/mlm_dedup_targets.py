"""multilabel_margin_loss ported with set semantics: repeated target labels count once.

Class: [C11] convention (multiplicity). KNOWN_BUGS B47 (MultiLabelMargin semantics), B14-style
convention drift.
Trigger: a label repeated before the -1 terminator, e.g. target row [3, 3, 1, -1].
Symptom: torch sums over the listed targets with multiplicity (class 3 counted twice); this port
         uses the set of positives, so the loss and the gradient are too small. Rows without
         repeats are exact.
"""
import torch
from torch.nn import _reduction as _Reduction


def _sample(x, row, C):
    stop = (row == -1).nonzero()
    k = int(stop[0, 0]) if len(stop) else C
    pos = row[:k].unique()  # BUG: positives as a set
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
    if ((target < -1) | (target >= C)).any():
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
