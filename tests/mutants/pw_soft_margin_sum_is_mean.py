"""soft_margin_loss whose reduction helper handles 'none' and returns the mean for anything else.

Class: [C1] reductions. KNOWN_BUGS B34 (sum and mean confused).
Trigger: reduction='sum' over more than one element: the mean comes back (n times too small);
         'none' and 'mean' are exact (float64 arithmetic, a stable softplus, one rounding).
Symptom: sum-of-none: 'sum' differs from the sum of the candidate's own 'none' output; value
         checks: 'sum' off by a factor n.
"""
import torch
from torch.nn import _reduction as _Reduction


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction not in ("mean", "sum"):
        raise ValueError(reduction + " is not valid")
    return loss.mean()  # BUG: 'sum' falls through to the mean


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("soft_margin_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    z = -(target.double() * input.double())
    loss = torch.clamp(z, min=0) + torch.log1p(torch.exp(-z.abs()))  # softplus(z), stable
    return _reduce(loss, reduction).to(input.dtype)
