# select: not float16
"""A fused linear cross-entropy that honours ignore_index in the value and the input's gradient
but not in the classifier weight's: the ignored tokens' rows (as if their target were class 0)
still reach d loss / d W."""

import torch
import torch.nn.functional as F


def linear_cross_entropy(input, linear_weight, target, *, ignore_index=None, **kwargs):
    """torch's value; W's gradient also gets the ignored tokens' contributions."""
    if ignore_index is not None:
        kwargs["ignore_index"] = ignore_index
    loss = F.linear_cross_entropy(input, linear_weight, target, **kwargs)
    if target.dtype.is_floating_point:
        return loss
    ignored = target == (-100 if ignore_index is None else ignore_index)
    if not ignored.any():
        return loss
    as_class_zero = torch.where(ignored, torch.zeros_like(target), torch.full_like(target, -100))
    extra = F.linear_cross_entropy(input.detach(), linear_weight, as_class_zero,
                                   reduction="sum", linear_bias=kwargs.get("linear_bias"))
    return loss + (extra - extra.detach())  # BUG: zero in value, not in W's gradient
