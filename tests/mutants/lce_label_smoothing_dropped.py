# select: not float16
"""A fused linear cross-entropy that accepts label_smoothing but never forwards it to its
kernel, so every call computes the unsmoothed loss (the bug of Liger-Kernel#243: the option
was not passed on, and no test set it)."""

import torch.nn.functional as F


def linear_cross_entropy(input, linear_weight, target, *args, label_smoothing=0.0, **kwargs):
    """torch's linear_cross_entropy without its label_smoothing."""
    return F.linear_cross_entropy(input, linear_weight, target, *args, **kwargs)  # BUG
