"""huber_loss ported as smooth_l1_loss with beta = delta (the factor delta dropped).

Class: [C11] formula / convention. KNOWN_BUGS B40 area (Huber vs SmoothL1 branch and scale
errors); torch's docs: huber(x, y) = delta * smooth_l1(x, y, beta=delta).
Trigger: delta != 1, with any nonzero residual.
Symptom: loss and gradients off by the factor 1 / delta. Exact for delta = 1.
"""
import torch


def huber_loss(input, target, reduction='mean', delta=1.0, weight=None):
    if not (input.is_floating_point() and target.is_floating_point()):
        raise TypeError("huber_loss: input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {tuple(target.shape)} != input shape {tuple(input.shape)}")
    if not delta > 0:
        raise ValueError("huber_loss does not support non-positive values for delta")
    if weight is not None and weight.shape != input.shape:
        raise ValueError("Weights and input must have the same size.")
    z = (input - target).abs()
    loss = torch.where(z < delta, 0.5 * z * z / delta, z - 0.5 * delta)  # BUG: smooth_l1
    if weight is not None:
        loss = loss * weight
    if reduction == 'none':
        return loss
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    raise ValueError(reduction + " is not valid")
