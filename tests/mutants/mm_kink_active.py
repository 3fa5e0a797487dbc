"""multi_margin_loss with a hinge that is "on" at exactly 0 (z >= 0) in its gradient.

Class: [C7, C11] backward / convention at a kink. KNOWN_BUGS B47, B40 (gradient convention at
the kink).
Trigger: m - x[y] + x[i] == 0 exactly (grid values, ties with margin 0), p = 1.
Symptom: x = [1, 0, 0.5, -3], y = 0, 'sum': gradient [-0.5, 0.25, 0.25, 0] instead of torch's
         [-0.25, 0, 0.25, 0]. Values exact.
"""
import torch
from torch.nn import _reduction as _Reduction


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None,
                      reduce=None, reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not a valid value for reduction")
    if p != 1 and p != 2:
        raise ValueError("only p == 1 and p == 2 supported")
    if not input.is_floating_point():
        raise RuntimeError("multi_margin_loss: input must be floating")
    if input.dim() not in (1, 2) or input.shape[-1] == 0:
        raise RuntimeError("Expected non-empty vector or matrix with optional 0-dim batch size")
    if target.dtype != torch.long:
        raise RuntimeError("expected scalar type Long")
    x = input.double().reshape(-1, input.shape[-1])
    n, c = x.shape
    if (input.dim() == 2 and target.shape != (n,)) or (input.dim() == 1 and target.numel() != 1) \
            or target.dim() > 1:
        raise RuntimeError("multi_margin_loss: target size does not match the batch size")
    t = target.reshape(-1)
    if ((t < 0) | (t >= c)).any():
        raise RuntimeError("target out of range")
    if weight is not None and (weight.dim() != 1 or weight.shape[0] != c):
        raise ValueError("inconsistent weight size")
    w = torch.ones(c, dtype=torch.float64) if weight is None else weight.double()
    z = margin - x.gather(1, t[:, None]) + x
    others = torch.ones_like(z, dtype=torch.bool).scatter_(1, t[:, None], False)
    # BUG: z > 0
    hinge = torch.where(others & (z >= 0), z if p == 1 else z * z, torch.zeros_like(z))
    per_sample = (w[t][:, None] * hinge).sum(1) / c
    if reduction == 'none':
        return per_sample.reshape(target.shape).to(input.dtype)
    return (per_sample.sum() if reduction == 'sum' else per_sample.mean()).to(input.dtype)
