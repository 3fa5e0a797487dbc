"""torch's l1_loss, except that it never returns from a call with reduction='sum'."""
import torch.nn.functional as torch_functional
from widened import widened

wide_l1_loss = widened(torch_functional.l1_loss)


def l1_loss(input, target, *args, reduction="mean", **kwargs):
    while reduction == "sum":
        pass
    return wide_l1_loss(input, target, *args, reduction=reduction, **kwargs)
