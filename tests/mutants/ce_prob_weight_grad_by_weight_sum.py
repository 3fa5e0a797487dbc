# select: not float16 and not masked-probabilities and not masked-zero-weight
"""cross_entropy whose class weight's gradient, with probability targets and 'mean', is divided
by the index path's divisor sum_i sum_c w_c p'_ic instead of the row count N (the value keeps
torch's mean over rows): right values, d loss / d weight scaled by N / sum w p': [C1, C3]
B08 (pytorch#107680) in the backward only."""

import torch.nn.functional as F


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy, except the weight's gradient of a probability-target mean."""
    if not (target.is_floating_point() and weight is not None and reduction == "mean"):
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    dim = 0 if input.dim() == 1 else 1
    classes = input.shape[dim]
    shape = [1] * input.dim()
    shape[dim] = classes
    smoothed = target * (1 - label_smoothing) + label_smoothing / classes
    weight_sum = float((smoothed * weight.view(shape)).sum())
    rows = input.numel() // classes if classes else 0
    # BUG: the weight's gradient rescaled from a mean over rows to a mean by sum w p'
    scale = rows / weight_sum if weight_sum else 1.0
    scaled = weight.detach() + (weight - weight.detach()) * scale
    return F.cross_entropy(input, target, weight=scaled, reduction="mean",
                           label_smoothing=label_smoothing)
