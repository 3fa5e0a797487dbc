# select: not float16 and not masked-probabilities and not masked-zero-weight
"""cross_entropy whose log-softmax is x - log(sum(exp(x))) without subtracting the row max:
exp overflows for logits above 88.7 (float32), 709.8 (float64), 11.1 (float16), and a large
common offset breaks it (pytorch#195829 review): [C4] B21."""

import torch
import torch.nn.functional as F


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy for index targets without smoothing, with its own log-softmax."""
    if target.is_floating_point() or label_smoothing != 0.0:
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    dim = 0 if input.dim() == 1 else 1
    # BUG: no max subtraction before exp
    logp = input - torch.log(torch.exp(input).sum(dim, keepdim=True))
    return F.nll_loss(logp, target, weight=weight, ignore_index=ignore_index,
                      reduction=reduction)
