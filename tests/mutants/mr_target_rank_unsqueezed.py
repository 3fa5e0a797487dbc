"""margin_ranking_loss that "helpfully" unsqueezes a lower-rank target to broadcast it.

Class: [C8, C9] shape contract / input validation. KNOWN_BUGS B42 (pytorch#9526, #42864: inputs
(N, D) with a target (N,) silently broadcast to a different meaning; torch now raises).
Trigger: target of fewer dimensions than the inputs, e.g. inputs (2, 4), target (2,).
Symptom: returns a value instead of raising. Exact on every valid call.
"""
import torch
from torch.nn import _reduction as _Reduction


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None,
                        reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not a valid value for reduction")
    while target.dim() < input1.dim():  # BUG: torch raises on different numbers of dimensions
        target = target.unsqueeze(-1)
    if input1.dim() != input2.dim():
        raise RuntimeError("margin_ranking_loss: all input tensors should have the same dimension")
    x1, x2, y = torch.broadcast_tensors(input1.double(), input2.double(), target.double())
    loss = (margin - y * (x1 - x2)).clamp_min(0)
    if reduction == 'none':
        return loss.to(input1.dtype)
    return (loss.sum() if reduction == 'sum' else loss.mean()).to(input1.dtype)
