"""mse_loss that accepts the weight keyword and drops it.

Class: [C3, C11] weight handling / option plumbing. KNOWN_BUGS B15 (an option accepted and never
forwarded), B35 (torch/nn#949: the stable rewrite ignored weights).
Trigger: any weight other than all ones.
Symptom: the unweighted loss (and mean over numel); weight.grad is None. Exact without weight.
"""
from torch.nn import _reduction as _Reduction


def mse_loss(input, target, size_average=None, reduce=None, reduction='mean', weight=None):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("mse_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(reduction + " is not valid")
    loss = (input.double() - target.double()) ** 2  # BUG: weight validated, then forgotten
    if reduction == 'none':
        return loss.to(input.dtype)
    return (loss.sum() if reduction == 'sum' else loss.mean()).to(input.dtype)
