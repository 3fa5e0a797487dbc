"""torch's l1_loss, except that it raises on every call with reduction='sum'."""
import torch.nn.functional as torch_functional
from widened import widened

wide_l1_loss = widened(torch_functional.l1_loss)


def l1_loss(input, target, *args, reduction="mean", **kwargs):
    if reduction == "sum":
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    return wide_l1_loss(input, target, *args, reduction=reduction, **kwargs)
