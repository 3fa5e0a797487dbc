"""margin_ranking_loss that treats the target as a constant label (detached).

Class: [C7] backward: a differentiable argument gets no gradient. KNOWN_BUGS B39
(Liger-Kernel#1021: no gradient for the target), B43.
Trigger: target.requires_grad (every gradient check; torch differentiates the target).
Symptom: target.grad is None where torch gives -(x1 - x2) g on the active hinges. Values and
         input gradients exact.
"""
import torch
from torch.nn import _reduction as _Reduction


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not a valid value for reduction")
    if not input1.dim() == input2.dim() == target.dim():
        raise RuntimeError("margin_ranking_loss: all input tensors should have the same dimension")
    # BUG: torch differentiates y
    x1, x2, y = torch.broadcast_tensors(input1.double(), input2.double(), target.double().detach())
    loss = (margin - y * (x1 - x2)).clamp_min(0)
    if reduction == 'none':
        return loss.to(input1.dtype)
    return (loss.sum() if reduction == 'sum' else loss.mean()).to(input1.dtype)
