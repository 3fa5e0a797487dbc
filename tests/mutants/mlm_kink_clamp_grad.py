"""multilabel_margin_loss with the hinge written as clamp(min=0), i.e. a >= 0 gradient mask.

Class: [C7, C11] backward at the hinge kink. KNOWN_BUGS B40 (branch-selection errors in
piecewise losses), B47 (MultiLabelMargin backward).
Trigger: a pair with x[y_j] - x[i] == 1 exactly (1 - x[y_j] + x[i] == 0), e.g. integer or
         half-integer logits such as x = [1., 0., ...] with target class 0.
Symptom: clamp's gradient passes at 0, so the pair adds -1/C to x[y_j] and +1/C to x[i]; torch
         (z > 0) gives 0 there. Loss values and all other gradients are exact.
"""
import torch
from torch.nn import _reduction as _Reduction


def _rows(x, t, C):
    """Per-sample loss for a block of rows: x (B, C) float, t (B, C) int64."""
    valid = (t != -1).long().cumprod(dim=1).bool()  # entries before the first -1
    k = int(valid.sum(1).max())
    valid, idx = valid[:, :k], t[:, :k].clamp(min=0)
    is_tgt = torch.zeros_like(t).scatter_add_(1, idx, valid.long()) > 0
    z = 1 - x.gather(1, idx).unsqueeze(2) + x.unsqueeze(1)  # 1 - x[y_j] + x[i]
    pair = valid.unsqueeze(2) & ~is_tgt.unsqueeze(1)
    return torch.where(pair, z.clamp(min=0), 0).sum((1, 2)) / C  # BUG: clamp grad at z == 0 is 1


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
