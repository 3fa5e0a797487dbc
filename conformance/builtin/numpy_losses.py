"""Built-in NumPy candidate for the conformance suite (``--impl=numpy``).

This module is both the reference-style candidate the suite ships with and an
example to copy when wrapping another framework.  A candidate module follows a
small protocol:

* ``FRAMEWORK`` is a module-level string naming the framework under test.
* Each loss is a plain function with the signature and semantics of its
  ``torch.nn.functional`` namesake, including the legacy ``size_average`` /
  ``reduce`` arguments, which override ``reduction`` when either is given.
* Each ``<loss>_vjp(grad_output, *args, **kwargs)`` returns a dict mapping
  argument names to the vector-Jacobian product for that argument; every
  gradient has the shape and dtype of its argument.
* Inputs are NumPy arrays, possibly non-contiguous or read-only views; they are
  never written to.  Floating inputs may be float64, float32, float16 or
  ``ml_dtypes.bfloat16``; index targets are int64.
* Numeric policy: every floating input is converted (exactly) to float64, all
  arithmetic happens in float64, and each result is rounded once to the
  dtype of the argument it belongs to.
* Invalid arguments raise ``ValueError`` with a message naming the problem.

``multi_hot`` is a helper that builds dense 0/1 targets for
``multilabel_soft_margin_loss`` from padded or ragged label lists.
"""

import math
import operator

import numpy as np

from .numpy_pointwise import (  # noqa: F401 (the pointwise family, part of this candidate)
    huber_loss, huber_loss_vjp, l1_loss, l1_loss_vjp, mse_loss, mse_loss_vjp, smooth_l1_loss,
    smooth_l1_loss_vjp, soft_margin_loss, soft_margin_loss_vjp)
# The later families, one module each; each module's __all__ lists its losses and their vjps.
from .numpy_classification import *  # noqa: F401,F403
from .numpy_linear import *  # noqa: F401,F403
from .numpy_binary import *  # noqa: F401,F403
from .numpy_probabilistic import *  # noqa: F401,F403
from .numpy_margin import *  # noqa: F401,F403
from .numpy_embedding import *  # noqa: F401,F403
from .numpy_sequence import *  # noqa: F401,F403
from .numpy_reduction import product_over, resolve_reduction as _resolve_reduction

FRAMEWORK = "numpy"


# Overflow to inf and nan propagation are the intended IEEE results (torch
# produces them too), so the loss functions run without numpy FP warnings.
_ieee = np.errstate(all="ignore")


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


def _check_input_target(fn, input, target):
    """Check that input is (C,) or (N, C) and target has the same shape."""
    if input.ndim not in (1, 2):
        raise ValueError(
            f"{fn}: input must be 1-D (C,) or 2-D (N, C), got shape {input.shape}")
    if target.shape != input.shape:
        raise ValueError(
            f"{fn}: target shape {target.shape} does not match "
            f"input shape {input.shape}")


def _reduce(per_sample, reduction, empty_mean):
    """Apply ``reduction`` to float64 per-sample losses of shape (N,) or ()."""
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return per_sample.mean() if per_sample.size else np.float64(empty_mean)


def _per_sample_upstream(fn, grad_output, reduction, batch_shape):
    """(g, count): the float64 upstream gradient g_n of each sample, of shape
    ``batch_shape``, and the count of samples that 'mean' divides it by (1 otherwise), kept
    apart so that the caller divides last (``product_over``): a subnormal g divided first
    lost its bits before a product with a large input."""
    g = np.asarray(grad_output, dtype=np.float64)
    expected = batch_shape if reduction == "none" else ()
    if g.shape != expected:
        raise ValueError(
            f"{fn}: grad_output has shape {g.shape}, expected {expected} "
            f"for reduction {reduction!r}")
    count = max(math.prod(batch_shape), 1) if reduction == "mean" else 1
    return np.broadcast_to(g, batch_shape), count


def _softplus(z):
    """Numerically stable log(1 + exp(z))."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _sigmoid(z):
    """Numerically stable 1 / (1 + exp(-z)) (never overflows)."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


# --------------------------------------------------------------------------
# multilabel_soft_margin_loss
# --------------------------------------------------------------------------

def _soft_margin_parts(input, target, weight):
    """Validate arguments; return float64 x, y, w (or None), unweighted loss."""
    fn = "multilabel_soft_margin_loss"
    _check_input_target(fn, input, target)
    x = np.asarray(input, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    w = None
    if weight is not None:
        w = np.asarray(weight, dtype=np.float64)
        if w.shape != x.shape[-1:]:
            raise ValueError(
                f"{fn}: weight must have shape (C,) = {x.shape[-1:]}, "
                f"got {w.shape}")
    # softplus(x) - y*x, written so that no term can overflow.
    unweighted = (1.0 - y) * _softplus(x) + y * _softplus(-x)
    return x, y, w, unweighted


@_ieee
def multilabel_soft_margin_loss(input, target, weight=None, size_average=None,
                                reduce=None, reduction="mean"):
    """One-versus-all logistic loss, as ``F.multilabel_soft_margin_loss``.

    ``input`` and ``target`` have shape (N, C) or (C,); ``weight`` is an
    optional per-class weight of shape (C,).  The per-sample loss is
    ``sum_c w_c * (softplus(x_c) - y_c * x_c) / C``.  ``'none'`` returns the
    per-sample losses (shape (N,) or ()); ``'mean'`` of an empty batch is nan.
    """
    reduction = _resolve_reduction(size_average, reduce, reduction)
    x, _, w, loss = _soft_margin_parts(input, target, weight)
    if w is not None:
        loss = loss * w
    per_sample = loss.sum(axis=-1) / x.shape[-1]
    return np.asarray(_reduce(per_sample, reduction, np.nan)).astype(input.dtype)


@_ieee
def multilabel_soft_margin_loss_vjp(grad_output, input, target, weight=None,
                                    size_average=None, reduce=None,
                                    reduction="mean"):
    """Vector-Jacobian product of ``multilabel_soft_margin_loss``.

    ``grad_output`` has the shape of the loss.  Returns a dict with keys
    ``'input'`` and ``'target'`` (plus ``'weight'`` when a weight is given),
    each shaped and typed like the corresponding argument.
    """
    reduction = _resolve_reduction(size_average, reduce, reduction)
    x, y, w, unweighted = _soft_margin_parts(input, target, weight)
    num_classes = x.shape[-1]
    g, count = _per_sample_upstream("multilabel_soft_margin_loss_vjp", grad_output,
                                    reduction, x.shape[:-1])
    g, divisor = g[..., None], count * num_classes  # g broadcasts over classes
    factors = (g,) if w is None else (g, w)
    grads = {
        "input": product_over(factors + (_sigmoid(x) - y,), divisor).astype(input.dtype),
        "target": (-product_over(factors + (x,), divisor)).astype(target.dtype),
    }
    if w is not None:
        grad_w = product_over((g, unweighted), divisor).reshape(-1, num_classes).sum(axis=0)
        grads["weight"] = grad_w.astype(weight.dtype)
    return grads


# --------------------------------------------------------------------------
# multilabel_margin_loss
# --------------------------------------------------------------------------

def _margin_parts(input, target):
    """Validate arguments and lay out the hinge terms of every sample.

    Returns ``(x, label_col, z, pair)`` for the samples as rows of 2-D arrays:
    ``label_col[n, j]`` is the class of label slot j (or the spare column C
    for slots at or after the terminator), ``z[n, j, i] = 1 - x[y_nj] + x[i]``
    and ``pair[n, j, i]`` marks the (label, non-label class) pairs that count.
    The (N, L, C) layout, L the most labels in a row, costs O(N * L * C) memory.
    """
    fn = "multilabel_margin_loss"
    _check_input_target(fn, input, target)
    if not np.issubdtype(target.dtype, np.integer):
        raise ValueError(
            f"{fn}: target must hold integer class indices, got {target.dtype}")
    num_classes = input.shape[-1]
    if num_classes == 0:
        raise ValueError(
            f"{fn}: input needs at least one class, got shape {input.shape}")
    bad = (target < -1) | (target >= num_classes)
    if bad.any():
        raise ValueError(
            f"{fn}: target values must be in [-1, C) = [-1, {num_classes}), "
            f"got {target[bad].reshape(-1)[0]}")
    x = np.atleast_2d(np.asarray(input, dtype=np.float64))
    t = np.atleast_2d(target)
    # Label slots before the first -1 of each row are valid; slots past the longest such
    # prefix are padding in every row and are dropped, so z is (N, labels, C), not (N, C, C).
    valid = ~np.logical_or.accumulate(t == -1, axis=1)
    width = int(valid.sum(axis=1).max()) if valid.size else 0
    t, valid = t[:, :width], valid[:, :width]
    label_col = np.where(valid, t, num_classes)
    is_label = np.zeros((x.shape[0], num_classes + 1), dtype=bool)
    np.put_along_axis(is_label, label_col, True, axis=1)
    is_label = is_label[:, :num_classes]
    x_label = np.take_along_axis(x, np.where(valid, t, 0), axis=1)
    z = 1.0 - x_label[:, :, None] + x[:, None, :]
    pair = valid[:, :, None] & ~is_label[:, None, :]
    return x, label_col, z, pair


@_ieee
def multilabel_margin_loss(input, target, size_average=None, reduce=None,
                           reduction="mean"):
    """Multi-class multi-label hinge loss, as ``F.multilabel_margin_loss``.

    ``target`` holds int class indices with the shape of ``input`` ((N, C) or
    (C,)); each row's labels end at its first -1.  The per-sample loss is
    ``sum_j sum_{i not a label} max(0, 1 - (x[y_j] - x[i])) / C`` (a repeated
    label counts once per occurrence).  ``'mean'`` of an empty batch is nan.
    """
    reduction = _resolve_reduction(size_average, reduce, reduction)
    x, _, z, pair = _margin_parts(input, target)
    hinge = np.where(pair, np.maximum(z, 0.0), 0.0)
    per_sample = (hinge.sum(axis=(1, 2)) / x.shape[1]).reshape(input.shape[:-1])
    return np.asarray(_reduce(per_sample, reduction, np.nan)).astype(input.dtype)


@_ieee
def multilabel_margin_loss_vjp(grad_output, input, target, size_average=None,
                               reduce=None, reduction="mean"):
    """Vector-Jacobian product of ``multilabel_margin_loss``.

    Uses torch's subgradient: a hinge term is active only where
    ``1 - x[y_j] + x[i] > 0`` strictly; each active pair adds ``g_n / C`` to
    ``x[i]`` and subtracts it from ``x[y_j]``.  Returns ``{'input': grad}``.
    """
    reduction = _resolve_reduction(size_average, reduce, reduction)
    x, label_col, z, pair = _margin_parts(input, target)
    n, num_classes = x.shape
    g, count = _per_sample_upstream("multilabel_margin_loss_vjp", grad_output,
                                    reduction, input.shape[:-1])
    active = pair & (z > 0)
    # Count, per class, active pairs where it is the non-label (+) or the
    # label (-); the spare last column absorbs slots past the terminator.
    counts = np.zeros((n, num_classes + 1))
    counts[:, :num_classes] = active.sum(axis=1)
    np.add.at(counts, (np.arange(n)[:, None], label_col), -active.sum(axis=2))
    grad = product_over((counts[:, :num_classes], g.reshape(-1, 1)), count * num_classes)
    return {"input": grad.reshape(input.shape).astype(input.dtype)}


# --------------------------------------------------------------------------
# multi_hot
# --------------------------------------------------------------------------

def multi_hot(labels, num_classes, padding_value=-1):
    """Encode per-sample label lists as a float32 (N, num_classes) 0/1 array.

    ``labels`` is either a 2-D integer array padded with ``padding_value`` or
    a list of lists of ints (rows may differ in length).  Order and duplicates
    do not matter and padding entries are ignored wherever they appear.  Any
    other label outside [0, num_classes) raises ``ValueError``.
    """
    num_classes = operator.index(num_classes)
    if num_classes < 0:
        raise ValueError(f"multi_hot: num_classes must be >= 0, got {num_classes}")
    if isinstance(labels, np.ndarray):
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                "multi_hot: a labels array must be 2-D with an integer dtype, "
                f"got shape {labels.shape} and dtype {labels.dtype}")
        n, width = labels.shape
        flat = labels.reshape(-1)
        rows = np.repeat(np.arange(n), width)
    else:
        try:
            seqs = [list(row) for row in labels]
        except TypeError:
            raise ValueError(
                "multi_hot: labels must be a 2-D integer array or a list of "
                "lists of ints") from None
        n = len(seqs)
        flat = np.asarray([v for row in seqs for v in row])
        if flat.size == 0:
            flat = flat.astype(np.int64)
        elif not np.issubdtype(flat.dtype, np.integer):
            raise ValueError(
                f"multi_hot: labels must be ints, got values of dtype {flat.dtype}")
        rows = np.repeat(np.arange(n), [len(row) for row in seqs])
    keep = flat != padding_value
    bad = keep & ((flat < 0) | (flat >= num_classes))
    if bad.any():
        k = np.flatnonzero(bad)[0]
        raise ValueError(
            f"multi_hot: label {flat[k]} in row {rows[k]} is outside "
            f"[0, {num_classes}) and is not the padding value {padding_value}")
    out = np.zeros((n, num_classes), dtype=np.float32)
    out[rows[keep], flat[keep]] = 1.0
    return out
