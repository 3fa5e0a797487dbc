# select: not float16 and not masked-probabilities and not masked-zero-weight
"""cross_entropy that "unifies" the two target forms: with probability targets and a class
weight, 'mean' divides by sum_i sum_c w_c p_ic as the index path divides by sum w_t, where
torch divides by the number of rows (pytorch#107680): [C1, C3] B08."""

import torch.nn.functional as F


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy, except the weighted mean of probability targets."""
    if not (target.is_floating_point() and weight is not None and reduction == "mean"):
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    total = F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                            reduction="sum", label_smoothing=label_smoothing)
    dim = 0 if input.dim() == 1 else 1
    shape = [1] * input.dim()
    shape[dim] = input.shape[dim]
    # BUG: the denominator of the index-target path
    return total / (target * weight.view(shape)).sum()
