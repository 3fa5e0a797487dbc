"""binary_cross_entropy_with_logits as the textbook -(y log p + (1 - y) log(1 - p)), p = sigmoid(x),
in the input dtype.

Class: [C4] extreme-value stability. KNOWN_BUGS B28 (sigmoid then log), B35.
Trigger: x > 0 beyond a few units: 1 - sigmoid(x) cancels (float32 x = 10: log(1 - p) off by
         1e-3 relative), then is 0 (x >~ 17 float32, 37 float64, 8 float16), so the loss is inf
         (y < 1) or nan (0 * -inf, y = 1) where it is finite. x < 0 stays accurate: the formula
         is asymmetric, and the mirror property (-x, 1 - y) shows it without a reference.
Symptom: mirror: loss(x, y) inf or nan, loss(-x, 1 - y) finite; value checks: inf / nan / large
         errors at large positive logits.
"""
import torch


def _check(input, target, weight, pos_weight, reduction):
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    for name, value in (("weight", weight), ("pos_weight", pos_weight)):
        if value is not None and torch.broadcast_shapes(value.shape, input.shape) != input.shape:
            raise ValueError(f"{name} {tuple(value.shape)} would enlarge input "
                             f"{tuple(input.shape)}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    _check(input, target, weight, pos_weight, reduction)
    p = torch.sigmoid(input)
    q = 1.0 if pos_weight is None else pos_weight
    loss = -(q * target * torch.log(p) + (1 - target) * torch.log(1 - p))  # BUG: log(1 - p)
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()
