# select: not float16 and not masked-probabilities and not masked-zero-weight
"""cross_entropy with probability targets that smooths the target through a detached copy, so
that d loss / d target forgets the factor (1 - e) of p' = (1 - e) p + e / C: right values,
a target gradient 1 / (1 - e) too large (and nonzero at e = 1): [C7, C11]."""

import torch.nn.functional as F


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy, except the target's gradient under label smoothing."""
    if not (target.is_floating_point() and label_smoothing):
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    classes = input.shape[0 if input.dim() == 1 else 1]
    # BUG: (1 - e) applied to a detached copy: the value is p', the gradient in p is 1
    smoothed = (target + (target * (1 - label_smoothing) - target).detach()
                + label_smoothing / classes)
    return F.cross_entropy(input, smoothed, weight=weight, ignore_index=ignore_index,
                           reduction=reduction)
