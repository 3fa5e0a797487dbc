"""multilabel_soft_margin_loss whose weighted per-sample mean divides by sum(weight), not C.

Class: [C1, C3] reduction denominator / weight handling. KNOWN_BUGS B07 (weighted-mean semantics
carried over from CE/NLL, where mean divides by sum of weights), B34.
Trigger: weight given and weight.sum() != C (non-uniform, zero, negative or scaled weights).
Symptom: every per-sample loss scaled by C / sum(w); inf/NaN when sum(w) == 0. Uniform weight
         of ones (and weight=None) is still exact.
"""
import torch.nn.functional as F
from torch.nn import _reduction as _Reduction


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    loss = -(target * F.logsigmoid(input) + (1 - target) * F.logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
        denom = weight.sum()  # BUG: "weighted mean" over classes, CE-style
    else:
        denom = input.size(-1)
    loss = loss.sum(dim=-1) / denom
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
