"""cosine_embedding_loss whose 'mean' divides by N * D (the elements of the inputs), not N.

Class: [C1] reduction denominator. KNOWN_BUGS B38 (hand-written mean over the feature axis),
B34.
Trigger: reduction='mean' with D > 1 (and N >= 1).
Symptom: the mean (and its gradient) D times too small; 'none' and 'sum' exact.
"""
import torch
from torch.nn import _reduction

EPS = 9.999999960041972e-13  # torch's EPSILON (1e-12 as a float32)


def _reduced(loss, size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    if reduction == 'none':
        return loss
    if reduction == 'sum':
        return loss.sum()
    if reduction == 'mean':
        return loss.mean()
    raise ValueError(reduction + " is not a valid value for reduction")


def _check(input1, input2, target):
    if target.dim() not in (0, 1):
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
    if input1.dim() != target.dim() + 1 or input2.shape != input1.shape:
        raise RuntimeError(f"inputs {tuple(input1.shape)} and {tuple(input2.shape)} do not fit "
                           f"target {tuple(target.shape)}")
    if target.dim() == 1 and target.shape[0] != input1.shape[0]:
        raise RuntimeError("target size does not match the batch")


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                          reduction='mean'):
    _check(input1, input2, target)
    x1, x2, y = input1.double(), input2.double(), target.double()
    prod = (x1 * x2).sum(-1)
    mag1 = (x1 * x1).sum(-1) + EPS
    mag2 = (x2 * x2).sum(-1) + EPS
    cos = prod / torch.sqrt(mag1 * mag2)
    loss = torch.where(y == 1, 1 - cos, torch.where(y == -1, (cos - margin).clamp_min(0),
                                                     torch.zeros_like(cos)))
    if size_average is not None or reduce is not None:
        reduction = _reduction.legacy_get_string(size_average, reduce)
    if reduction == 'mean':
        return (loss.sum() / input1.numel()).to(input1.dtype)  # BUG: N * D, not N
    return _reduced(loss, size_average, reduce, reduction).to(input1.dtype)
