"""multilabel_soft_margin_loss with a per-class loop accumulating in the input dtype.

Class: [C6] low precision (fp16/bf16 accumulation). KNOWN_BUGS B10, B50 (reduce in the input
dtype), B13.
Trigger: float16 / bfloat16 input with large C (>= 1024, e.g. 4096). (float32 drifts slightly
         for very large C.)
Symptom: the running sum stagnates once it is large relative to its ulp (bf16: 8-bit mantissa),
         so the per-sample loss is far too small. Exact for small C and float32/64.
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    C = input.size(-1)
    acc = torch.zeros(loss.shape[:-1], dtype=loss.dtype)  # BUG: accumulator in input dtype
    for c in range(C):  # "kernel" loop over the class tiles
        acc = acc + loss[..., c]
    loss = acc / C
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
