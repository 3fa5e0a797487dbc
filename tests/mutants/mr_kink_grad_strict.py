"""margin_ranking_loss written with a hinge that is "off" at exactly 0: where(z > 0, z, 0).

Class: [C7, C11] backward / convention at a kink. KNOWN_BUGS B40 (gradient conventions where the
argument of a kink is exactly 0).
Trigger: an element with m - y (x1 - x2) == 0 exactly (e.g. x1 == x2 with margin 0, or the
         kink grid), any reduction.
Symptom: its gradients are 0, where torch's clamp_min passes the gradient at 0 (d/dx1 = -y g,
         d/dx2 = y g, d/dy = -(x1 - x2) g). Values exact.
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
    x1, x2, y = torch.broadcast_tensors(input1.double(), input2.double(), target.double())
    z = margin - y * (x1 - x2)
    loss = torch.where(z > 0, z, torch.zeros_like(z))  # BUG: torch's clamp_min is active at 0
    if reduction == 'none':
        return loss.to(input1.dtype)
    return (loss.sum() if reduction == 'sum' else loss.mean()).to(input1.dtype)
