"""soft_margin_loss written literally from the documentation: log(1 + exp(-y x)).

Class: [C4] extreme-value stability. KNOWN_BUGS B28 (naive exp -> log), B27.
Trigger: agreeing logits, y x > 0: rounding 1 + exp(-y x) loses the relative accuracy of a
         small loss (float64 y x = 10.6: 3e4 ulps), all of it for y x >~ 37 (float64), 17
         (float32), 8 (float16); and -y x > 709.8 (float64), 88.7 (float32): exp overflows.
Symptom: small losses and their gradients inaccurate, then 0; inf (gradient nan) where the
         loss is about -y x. Accurate for y x <~ 0.
"""
import torch
from torch.nn import _reduction as _Reduction


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction='mean'):
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("soft_margin_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    loss = torch.log(1 + torch.exp(-target * input))  # BUG: not log1p, no max(t, 0) shift
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
