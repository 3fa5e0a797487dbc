"""l1_loss whose weighted 'mean' divides by the element count, as huber_loss's does.

Class: [C1, C3] reduction denominator / weight handling. KNOWN_BUGS B07 (weighted mean
semantics: torch's l1/mse take sum(w l) / sum(w); ports divide by N).
Trigger: a weight with sum(w) != numel, reduction='mean'.
Symptom: the mean is sum(w) / numel times torch's; input, target and weight gradients wrong.
         Exact without a weight, and for 'none' and 'sum'.
"""
from torch.nn import _reduction as _Reduction


def l1_loss(input, target, size_average=None, reduce=None, reduction='mean', weight=None):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("l1_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    loss = (input.double() - target.double()).abs()
    if weight is not None:
        loss = loss * weight
    if reduction == 'none':
        return loss.to(input.dtype)
    if reduction == 'sum':
        return loss.sum().to(input.dtype)
    return loss.mean().to(input.dtype)  # BUG: with a weight torch divides by weight.sum()
