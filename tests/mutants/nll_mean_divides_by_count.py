# select: not float16
"""nll_loss whose weighted 'mean' divides by the number of rows not ignored instead of the sum
of their class weights (pytorch#8062, #40560, the ONNX export #33509): [C1, C3] B07."""

import torch.nn.functional as F


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """torch's nll_loss, except the weighted mean."""
    if reduction != "mean" or weight is None:
        return F.nll_loss(input, target, weight=weight, ignore_index=ignore_index,
                          reduction=reduction)
    total = F.nll_loss(input, target, weight=weight, ignore_index=ignore_index, reduction="sum")
    # BUG: count of counted rows, not sum of w_t
    return total / (target != ignore_index).sum()
