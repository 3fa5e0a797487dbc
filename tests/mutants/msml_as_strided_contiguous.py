"""multilabel_soft_margin_loss "kernel" that reads every tensor as row-major contiguous storage.

Class: [C10] layout (stride assumptions). KNOWN_BUGS B11 (pytorch#67167 silently wrong on
transposed logits; TransformerEngine#2734).
Trigger: any non-contiguous argument: transposed, stride-2 sliced or narrowed input / target /
         weight; expanded (stride-0) views.
Symptom: values read from the wrong storage positions -> silently wrong loss and gradients,
         no error (expanded views whose storage is too small raise instead). Exact for
         contiguous arguments.
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def _as_kernel_sees_it(t):
    # the kernel is handed data_ptr() and assumes packed row-major strides
    strides, s = [], 1
    for n in reversed(t.shape):
        strides.insert(0, s)
        s *= n
    return torch.as_strided(t, t.shape, strides)  # BUG: ignores t.stride()


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    x, y = _as_kernel_sees_it(input), _as_kernel_sees_it(target)
    loss = -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
    if weight is not None:
        loss = loss * _as_kernel_sees_it(weight)
    C = input.size(-1)
    loss = loss.sum(dim=-1) / C
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
