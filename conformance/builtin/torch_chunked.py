"""Built-in candidate ``--impl=torch-chunked``: torch's chunked linear_cross_entropy.

torch 2.13's ``F.linear_cross_entropy`` with ``options=LinearCrossEntropyOptions()`` (torch's
defaults: the batch processed in chunks, the logits never materialised whole, the gradients
computed in the forward). A candidate in its own right, beside ``--impl=torch`` (the reference
path, ``options=None``), with its own known deviations (conformance/deviations/chunked.py).
Where the chunked path does not support a call (label smoothing, a K-dimensional weight...),
torch falls back to the reference path with a warning; the fallback is torch's, not ours.
"""

import warnings

import torch
import torch.nn.functional as F

FRAMEWORK = "torch"
__all__ = ["linear_cross_entropy"]


def linear_cross_entropy(input, linear_weight, target, **kwargs):
    """``F.linear_cross_entropy`` on torch's chunked path (torch's default options)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback warning: torch's documented behaviour
        return F.linear_cross_entropy(input, linear_weight, target,
                                      options=torch.nn.LinearCrossEntropyOptions(), **kwargs)
