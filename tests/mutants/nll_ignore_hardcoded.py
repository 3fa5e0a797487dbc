# select: not float16
"""nll_loss whose kernel hard-codes the ignore sentinel -100 (unsloth#192's test, mlverse#1145):
another ignore_index is not honoured: [C2] B05."""

import torch.nn.functional as F


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """torch's nll_loss, with the sentinel fixed."""
    # BUG: ignore_index is accepted and dropped
    return F.nll_loss(input, target, weight=weight, ignore_index=-100, reduction=reduction)
