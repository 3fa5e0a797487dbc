# select: not float16 and not masked-probabilities and not masked-zero-weight
"""cross_entropy that detaches a probability target, as fused kernels that treat the labels as
constants do (Liger-Kernel#1021 for soft labels): right values and input gradient, no
gradient reaches the target: [C7] B39."""

import torch.nn.functional as F


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy with a detached probability target."""
    if target.is_floating_point():
        target = target.detach()  # BUG
    return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)
