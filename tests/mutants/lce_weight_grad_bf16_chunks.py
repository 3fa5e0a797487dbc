# select: not float16 and not bfloat16
"""A chunked linear cross-entropy (8 tokens a chunk) whose classifier-weight gradient is
accumulated in bfloat16 across chunks: each chunk's contribution to d loss / d W rounded to
bfloat16 before the chunks are added (a fused kernel's low-precision accumulator)."""

import torch
import torch.nn.functional as F

CHUNK = 8


class _Bfloat16Gradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight):
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.to(torch.bfloat16).to(grad_output.dtype)  # BUG


def linear_cross_entropy(input, linear_weight, target, *, reduction="mean", weight=None,
                         ignore_index=None, label_smoothing=0.0, linear_bias=None):
    """The loss summed chunk by chunk, each chunk with its own (bfloat16-rounded) W gradient."""
    kwargs = {"weight": weight, "label_smoothing": label_smoothing, "linear_bias": linear_bias}
    if ignore_index is not None:
        kwargs["ignore_index"] = ignore_index
    if input.dim() == 1 or input.shape[0] <= CHUNK:
        return F.linear_cross_entropy(input, _Bfloat16Gradient.apply(linear_weight), target,
                                      reduction=reduction, **kwargs)
    parts = [F.linear_cross_entropy(input[i:i + CHUNK], _Bfloat16Gradient.apply(linear_weight),
                                    target[i:i + CHUNK], reduction="none", **kwargs)
             for i in range(0, input.shape[0], CHUNK)]
    losses = torch.cat(parts)
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    if target.dtype.is_floating_point:
        return total / input.shape[0]
    counted = target != (-100 if ignore_index is None else ignore_index)
    w = torch.ones(linear_weight.shape[0], dtype=total.dtype) if weight is None else weight
    return total / w[target[counted]].sum()  # the weighted mean's divisor
