"""multilabel_soft_margin_loss that applies the class weights after the class mean.

Class: [C3] weight on the wrong axis. KNOWN_BUGS B36 (mlpack/mlpack#2345: weights multiplied
after the class mean, so weight[0] is not applied to class 0).
Trigger: non-uniform weight (C,) with per-class losses that differ.
Symptom: per-sample loss = mean(w) * mean_c(l_c) instead of mean_c(w_c * l_c); fails the
         class-permutation check. Exact for uniform weights and weight=None.
"""
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    C = input.size(-1)
    loss = loss.sum(dim=-1, keepdim=True) / C
    if weight is not None:
        loss = (loss * weight).mean(dim=-1)  # BUG: weight applied to the class mean
    else:
        loss = loss.squeeze(-1)
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
