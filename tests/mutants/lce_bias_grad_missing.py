# select: not float16
"""A fused linear cross-entropy that adds the bias to the logits but never sends it a gradient
(the bias detached): right values, no gradient reaches linear_bias."""

import torch.nn.functional as F


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, **kwargs):
    """torch's linear_cross_entropy with the bias detached."""
    bias = None if linear_bias is None else linear_bias.detach()  # BUG
    return F.linear_cross_entropy(input, linear_weight, target, linear_bias=bias, **kwargs)
