"""cosine_embedding_loss with the plain cosine, x1.x2 / (|x1| |x2|), without torch's EPS.

Class: [C4, C5] extreme values / 0 * inf. KNOWN_BUGS B41 (pytorch/pytorch#5447: eps in the
cosine denominator; sentence-transformers#625, optax#946: NaN on a zero embedding).
Trigger: a zero vector in input1 or input2 (also norms near 1e-6, where EPS matters).
Symptom: loss and gradients nan where torch's eps formula gives 1 (y = 1) and a finite
gradient. Computed in float64 and rounded once, so it inherits none of torch's own float16
overflows.
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
    cos = prod / (x1.norm(dim=-1) * x2.norm(dim=-1))  # BUG: no EPS: 0 / 0 at a zero vector
    loss = torch.where(y == 1, 1 - cos, torch.where(y == -1, (cos - margin).clamp_min(0),
                                                     torch.zeros_like(cos)))
    return _reduced(loss, size_average, reduce, reduction).to(input1.dtype)
