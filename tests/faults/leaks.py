"""torch's l1_loss that keeps 64 MB alive per call, and logs its process id to $PID_LOG."""
import os

import numpy as np
import torch.nn.functional as torch_functional
from widened import widened

wide_l1_loss = widened(torch_functional.l1_loss)

_KEPT = []


def l1_loss(input, target, *args, **kwargs):
    _KEPT.append(np.ones(8 << 20))  # 64 MB, touched
    with open(os.environ["PID_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")
    return wide_l1_loss(input, target, *args, **kwargs)
