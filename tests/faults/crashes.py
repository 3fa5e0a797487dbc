"""torch's pointwise losses, each killing its process for reduction='sum' in its own way."""
import ctypes
import os

import torch.nn.functional as torch_functional
from widened import widened

wide_huber_loss = widened(torch_functional.huber_loss)
wide_l1_loss = widened(torch_functional.l1_loss)
wide_mse_loss = widened(torch_functional.mse_loss)


def l1_loss(input, target, *args, reduction="mean", **kwargs):
    if reduction == "sum":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return wide_l1_loss(input, target, *args, reduction=reduction, **kwargs)


def mse_loss(input, target, *args, reduction="mean", **kwargs):
    if reduction == "sum":
        os.abort()  # SIGABRT, as a failed assert in C++ does
    return wide_mse_loss(input, target, *args, reduction=reduction, **kwargs)


def huber_loss(input, target, *args, reduction="mean", **kwargs):
    if reduction == "sum":
        os._exit(3)
    return wide_huber_loss(input, target, *args, reduction=reduction, **kwargs)
