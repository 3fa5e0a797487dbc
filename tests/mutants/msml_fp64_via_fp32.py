"""multilabel_soft_margin_loss "kernel" that always computes in float32 and casts back.

Class: [C6] low precision (forward computed in a narrower dtype). KNOWN_BUGS B50, B22.
Trigger: float64 input.
Symptom: float64 result carries float32 rounding (relative error ~1e-7 instead of ~1e-16),
         in the loss and in the gradients (inputs are rounded to float32 too). Exact for
         float32; fp16/bf16 are computed in float32 and rounded once (more accurate than torch).
"""
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    out_dtype = input.dtype
    x, y = input.float(), target.float()  # BUG: fp32 compute dtype, also for float64
    loss = -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
    if weight is not None:
        loss = loss * weight.float()
    C = input.size(-1)
    loss = loss.sum(dim=-1) / C
    if reduction == 'none':
        return loss.to(out_dtype)
    if reduction == 'mean':
        return loss.mean().to(out_dtype)
    if reduction == 'sum':
        return loss.sum().to(out_dtype)
    raise ValueError(reduction + " is not valid")
