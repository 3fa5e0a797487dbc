"""multilabel_soft_margin_loss whose contiguity guard checks only stride(-1) == 1.

Class: [C10] layout. KNOWN_BUGS B11 (NVIDIA/TransformerEngine#2734, fix PR #2746: the guard
checked only `stride(-1)`, so row-strided views were read with the wrong row pitch).
Trigger: 2-D input/target whose last dim is unit-stride but whose rows are not packed:
         row-sliced x[::2], column-narrowed x[:, :C] of a wider tensor, expanded (stride (0,1)).
Symptom: silently wrong rows (or an out-of-bounds error for expanded views). Transposed and
         stride-2 column views are copied by the guard and come out right; so does 1-D input.
"""
import torch
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def _kernel_view(t):
    if t.stride(-1) != 1:  # BUG: should be `not t.is_contiguous()`
        t = t.contiguous()
    strides, s = [], 1
    for n in reversed(t.shape):
        strides.insert(0, s)
        s *= n
    return torch.as_strided(t, t.shape, strides)  # row pitch assumed to be C


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    x, y = _kernel_view(input), _kernel_view(target)
    loss = -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x))
    if weight is not None:
        loss = loss * _kernel_view(weight)
    C = input.size(-1)
    loss = loss.sum(dim=-1) / C
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
