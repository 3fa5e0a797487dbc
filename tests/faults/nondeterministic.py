"""torch's l1_loss whose 'sum' differs in its last bit from call to call, as an atomic-add
reduction on a GPU does."""
import random

import torch
import torch.nn.functional as torch_functional
from widened import widened

wide_l1_loss = widened(torch_functional.l1_loss)


def l1_loss(input, target, *args, reduction="mean", **kwargs):
    out = wide_l1_loss(input, target, *args, reduction=reduction, **kwargs)
    if reduction == "sum" and random.random() < 0.5:
        out = out + (torch.nextafter(out.detach(), out.detach() + 1) - out.detach())
    return out
