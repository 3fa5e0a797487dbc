"""Built-in NumPy candidate, linear family: linear_cross_entropy.

Registered in ``numpy_losses`` (``--impl=numpy``) under its protocol and numeric policy: the
logits x W^T + b in float64 (never rounded to the inputs' dtype), then this candidate's own
``cross_entropy`` on them, each result rounded once to its argument's dtype; the gradients of
input, linear_weight and linear_bias from cross_entropy's gradient G in the logits: G W, G^T x
and the column sums of G (for 'sum' and 'mean', G of a unit upstream and the products times g
over the mean's divisor last: a subnormal sum of weights made G's entries inf of both signs, and
the products nan, where the exact products only leave the range); with probability targets
cross_entropy's own gradients in the target and the class weight. The K-dimensional weight (C,
d1, ..., dK, D), with its bias (C, d1, ..., dK) and batched tokens only, gives the logits (N, C,
d1, ..., dK): the same products with the weight flattened to (C d1 ... dK, D). ``ValueError``
for invalid arguments.
"""

import numpy as np

from .numpy_classification import cross_entropy, cross_entropy_mean_divisor, cross_entropy_vjp
from .numpy_reduction import product_over

__all__ = ["linear_cross_entropy", "linear_cross_entropy_vjp"]

DEFAULT_IGNORE_INDEX = -100


def _validate(input, linear_weight, target, linear_bias, ignore_index):
    """Raise ValueError for a call torch rejects before cross_entropy sees the logits."""
    if input.dtype.kind in "biu" or linear_weight.dtype.kind in "biu":
        raise ValueError("linear_cross_entropy: input and linear_weight must be floating")
    if input.ndim not in (1, 2):
        raise ValueError(f"linear_cross_entropy: input must be (D,) or (N, D), got "
                         f"{input.shape}")
    if linear_weight.ndim < 2 or linear_weight.shape[-1] != input.shape[-1]:
        raise ValueError(f"linear_cross_entropy: linear_weight {linear_weight.shape} does not "
                         f"match tokens of {input.shape[-1]} features")
    if linear_weight.ndim > 2 and input.ndim == 1:
        raise ValueError(f"linear_cross_entropy: a K-dimensional linear_weight "
                         f"{linear_weight.shape} requires batched input (N, D), got "
                         f"{input.shape}")
    if linear_bias is not None and linear_bias.shape != linear_weight.shape[:-1]:
        raise ValueError(f"linear_cross_entropy: linear_bias must be "
                         f"{linear_weight.shape[:-1]}, got {linear_bias.shape}")
    if np.asarray(target).dtype.kind == "f" and ignore_index is not None:
        raise ValueError("linear_cross_entropy: ignore_index cannot be given with probability "
                         "targets")


def _flat_weight(linear_weight):
    """The weight as (C d1 ... dK, D) float64 rows, one per logit of a token."""
    return np.asarray(linear_weight, np.float64).reshape(-1, linear_weight.shape[-1])


def _logits(input, linear_weight, target, linear_bias, ignore_index):
    """(float64 logits (C,), (N, C) or (N, C, d1, ..., dK), the ignore_index cross_entropy
    takes), after validating the call."""
    _validate(input, linear_weight, target, linear_bias, ignore_index)
    x = np.asarray(input, np.float64)
    z = x @ _flat_weight(linear_weight).T
    if linear_bias is not None:
        z = z + np.asarray(linear_bias, np.float64).reshape(-1)
    z = z.reshape(x.shape[:-1] + linear_weight.shape[:-1])
    return z, DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0):
    """Cross entropy of the logits of a linear layer, as ``F.linear_cross_entropy``."""
    z, ignore = _logits(input, linear_weight, target, linear_bias, ignore_index)
    w = None if weight is None else np.asarray(weight, np.float64)
    loss = cross_entropy(z, target, w, ignore_index=ignore, reduction=reduction,
                         label_smoothing=label_smoothing)
    return np.asarray(loss).astype(input.dtype)


def linear_cross_entropy_vjp(grad_output, input, linear_weight, target, *, linear_bias=None,
                             weight=None, reduction="mean", ignore_index=None,
                             label_smoothing=0.0):
    """Gradients of ``linear_cross_entropy`` in input, linear_weight and linear_bias."""
    z, ignore = _logits(input, linear_weight, target, linear_bias, ignore_index)
    w = None if weight is None else np.asarray(weight, np.float64)
    g = np.asarray(grad_output, np.float64)
    ce_grads = cross_entropy_vjp(g, z, target, w, ignore_index=ignore, reduction=reduction,
                                 label_smoothing=label_smoothing)
    factors, divisor, G = (), 1.0, ce_grads["input"]
    if reduction != "none":  # g / divisor times the products last (``product_over``)
        G = cross_entropy_vjp(np.float64(1.0), z, target, w, ignore_index=ignore,
                              reduction="sum", label_smoothing=label_smoothing)["input"]
        factors = (g,)
        if reduction == "mean":
            divisor = cross_entropy_mean_divisor(z, target, w, ignore_index=ignore)
            divisor = divisor or 1.0  # no row counts: G is 0, and so is torch's gradient
    W = _flat_weight(linear_weight)
    G = G.reshape(-1, W.shape[0])  # (tokens, C d1 ... dK), as W's rows
    x = np.asarray(input, np.float64).reshape(G.shape[0], input.shape[-1])

    def scaled(product):
        return product_over(factors + (product,), divisor)

    grads = {"input": scaled(G @ W).reshape(input.shape).astype(input.dtype),
             "linear_weight": scaled(G.T @ x).reshape(linear_weight.shape).astype(
                 linear_weight.dtype)}
    if linear_bias is not None:
        grads["linear_bias"] = scaled(G.sum(axis=0)).reshape(linear_bias.shape).astype(
            linear_bias.dtype)
    # probability targets: cross_entropy's own gradients in the target and the class weight
    if "target" in ce_grads:
        grads["target"] = ce_grads["target"].astype(target.dtype)
    if "weight" in ce_grads:
        grads["weight"] = ce_grads["weight"].astype(weight.dtype)
    return grads
