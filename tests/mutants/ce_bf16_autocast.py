# select: float32 and not masked-probabilities and not masked-zero-weight
"""cross_entropy run under a bfloat16 autocast: the log-softmax, the nll and the reduction are
computed in bfloat16 and the result cast back (optax#1020, mlx#4520): [C6] B50, B22."""

import torch
import torch.nn.functional as F


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy, computed in bfloat16 for wider inputs."""
    # BUG: float32/float64 inputs are rounded to bfloat16 and the loss computed there
    low = input.to(torch.bfloat16)
    low_target = target.to(torch.bfloat16) if target.is_floating_point() else target
    low_weight = None if weight is None else weight.to(torch.bfloat16)
    return F.cross_entropy(low, low_target, weight=low_weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing).to(input.dtype)
