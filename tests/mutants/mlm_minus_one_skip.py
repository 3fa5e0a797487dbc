"""multilabel_margin_loss that skips -1 entries instead of stopping at the first one.

Class: [C2] padding / sentinel semantics. KNOWN_BUGS B47 (values after the -1 terminator must
not affect the result), B37 (docs said targets are "padded by -1").
Trigger: a target row with a valid class index after its first -1, e.g. [2, -1, 0, 3].
Symptom: classes after the terminator count as targets (extra hinge terms, and they are removed
         from the non-target set): wrong loss and gradient. Rows with only trailing -1 are exact.
"""
import torch
from torch.nn import _reduction as _Reduction


def _rows(x, t, C):
    """Per-sample loss for a block of rows: x (B, C) float, t (B, C) int64."""
    valid = t != -1  # BUG: -1 treated as 'skip', not as the terminator
    idx = t.clamp(min=0)
    is_tgt = torch.zeros_like(t).scatter_add_(1, idx, valid.long()) > 0
    z = 1 - x.gather(1, idx).unsqueeze(2) + x.unsqueeze(1)  # 1 - x[y_j] + x[i]
    pair = valid.unsqueeze(2) & ~is_tgt.unsqueeze(1)
    return torch.where(pair, torch.relu(z), 0).sum((1, 2)) / C


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
    B = max(1, 2 ** 24 // (C * C))  # bound the (B, k, C) pair tensor
    per = torch.cat([_rows(x[i:i + B], t[i:i + B], C) for i in range(0, len(x), B)]) \
        if len(x) else x.sum(1)
    if input.dim() == 1:
        per = per.reshape(())
    if reduction == 'none':
        return per
    if reduction == 'sum':
        return per.sum()
    return per.mean()  # empty batch -> nan
