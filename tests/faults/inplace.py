"""torch's losses computed after scribbling on their inputs (reduction='sum' only).

l1_loss adds 1 to its input's first element through a view; mse_loss leaves the elements it is given
alone but fills the storage around a strided (non-contiguous) input.
"""
import torch
import torch.nn.functional as torch_functional
from widened import widened

wide_l1_loss = widened(torch_functional.l1_loss)
wide_mse_loss = widened(torch_functional.mse_loss)


def l1_loss(input, target, *args, reduction="mean", **kwargs):
    if reduction == "sum" and input.numel():
        input.detach().unsqueeze(0).narrow(-1, 0, 1).add_(1)
    return wide_l1_loss(input, target, *args, reduction=reduction, **kwargs)


def mse_loss(input, target, *args, reduction="mean", **kwargs):
    storage = input.detach().untyped_storage()
    padded = storage.nbytes() > input.numel() * input.element_size()
    if reduction == "sum" and padded and 0 not in input.stride():
        values = input.detach().clone()
        torch.empty(0, dtype=input.dtype).set_(storage).fill_(7.0)
        input.detach().copy_(values)  # the view reads as before: only its neighbours changed
    return wide_mse_loss(input, target, *args, reduction=reduction, **kwargs)
