"""optax's losses under torch.nn.functional's names, signatures and reduction semantics.

A JAX candidate for the conformance suite (``FRAMEWORK = "jax"``): every function takes and
returns jax arrays; the suite differentiates it with ``jax.vjp``. optax computes the loss;
this file only adapts: argument order and names, the class axis (torch's is 1, optax's -1),
torch's reductions ('none', 'sum', 'mean', kl_div's 'batchmean'), torch's weights where optax
can express them, ignore_index, label smoothing, the legacy size_average/reduce keywords, and
the argument checks torch makes (a conforming candidate rejects what torch rejects).

    pip install -e '.[jax]'
    pytest conformance --impl=examples/optax_losses.py --profile=quick --dtype float32

Provided (optax function in brackets):

- binary_cross_entropy_with_logits [sigmoid_binary_cross_entropy]; pos_weight q as
  bce(x, y) + (q - 1) y bce(x, 1), since (1 - y) softplus(x) + q y softplus(-x) is that sum
- multilabel_soft_margin_loss [sigmoid_binary_cross_entropy], mean over classes
- soft_margin_loss [sigmoid_binary_cross_entropy(y x, 1) = softplus(-y x)]
- cross_entropy, index targets [softmax_cross_entropy_with_integer_labels] and probability
  targets [softmax_cross_entropy]; weight and label smoothing through
  softmax_cross_entropy's soft labels (sum_c w_c nlp_c)
- kl_div [kl_divergence, kl_divergence_with_log_targets, with axis=() for the elementwise terms]
- mse_loss [squared_error, not l2_loss, which is half of it]
- huber_loss [huber_loss]; smooth_l1_loss [huber_loss(delta=beta) / beta; beta = 0 is l1,
  which optax does not have: |x - y| there]
- ctc_loss [ctc_loss]: see examples/README.md for how far it matches

Not provided, optax has no such loss: l1_loss, nll_loss, binary_cross_entropy, poisson and
gaussian nll, the margin and embedding losses (optax's hinge_loss, multiclass_hinge_loss and
triplet_margin_loss are other functions than torch's), multilabel_margin_loss, multi_hot.

Runs with jax_enable_x64 on (the suite's jax adapter turns it on): arrays made here carry
explicit dtypes so float32 stays float32.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

FRAMEWORK = "jax"

_REDUCTIONS = ("none", "mean", "sum")


# --- the adaptation: checks and reductions as torch makes them ----------------------------------

def _legacy(size_average, reduce, reduction):
    """torch's _Reduction.legacy_get_string: the legacy keywords override ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else ("mean" if size_average else "sum")


def _check_reduction(reduction, allowed=_REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{reduction!r} is not a valid value for reduction")


def _floating(name, x):
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must be floating, got {x.dtype}")


def _same_shape(input, target, what="target"):
    if input.shape != target.shape:
        raise ValueError(f"{what} size {target.shape} must be the same as input size "
                         f"{input.shape}")


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    return jnp.sum(loss) if reduction == "sum" else jnp.mean(loss)


def _weighted(loss, weight, reduction, mean_by_weight):
    """w * loss reduced; 'mean' is sum(w t) / sum(w) where ``mean_by_weight`` (torch's l1 and
    mse), mean(w t) otherwise (torch's huber)."""
    if weight is None:
        return _reduce(loss, reduction)
    if weight.shape != loss.shape:
        raise ValueError(f"weight shape {weight.shape} must match input shape {loss.shape}")
    weighted = loss * weight
    if reduction == "mean" and mean_by_weight:
        return jnp.sum(weighted) / jnp.sum(weight)
    return _reduce(weighted, reduction)


# --- pointwise ------------------------------------------------------------------------------------

def _regression_args(input, target, reduction):
    _check_reduction(reduction)
    _floating("input", input)
    _floating("target", target)
    _same_shape(input, target)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _legacy(size_average, reduce, reduction)
    _regression_args(input, target, reduction)
    return _weighted(optax.squared_error(input, target), weight, reduction, True)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    _regression_args(input, target, reduction)
    if not delta > 0:
        raise ValueError(f"huber_loss does not support non-positive values for delta ({delta})")
    return _weighted(optax.huber_loss(input, target, delta=delta), weight, reduction, False)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    reduction = _legacy(size_average, reduce, reduction)
    _regression_args(input, target, reduction)
    if not beta >= 0:
        raise ValueError(f"smooth_l1_loss does not support negative values for beta ({beta})")
    if beta == 0:  # torch: l1_loss; optax.huber_loss(delta=0) is 0 and would give 0 / 0.
        # optax has no l1 loss: |r| here, with torch's gradient 0 at r = 0 (jax's abs has 1)
        residual = input - target
        return _reduce(jnp.where(residual == 0, jnp.zeros_like(residual), jnp.abs(residual)),
                       reduction)
    return _reduce(optax.huber_loss(input, target, delta=beta) / beta, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = _legacy(size_average, reduce, reduction)
    _regression_args(input, target, reduction)
    ones = jnp.ones_like(input)
    return _reduce(optax.sigmoid_binary_cross_entropy(target * input, ones), reduction)


# --- binary and multi-label -----------------------------------------------------------------------

def _broadcasts_into(name, w, shape):
    if w is None:
        return
    if jnp.broadcast_shapes(w.shape, shape) != tuple(shape):
        raise ValueError(f"{name} of shape {w.shape} does not broadcast to the input's {shape}")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    reduction = _legacy(size_average, reduce, reduction)
    _regression_args(input, target, reduction)
    _broadcasts_into("weight", weight, input.shape)
    _broadcasts_into("pos_weight", pos_weight, input.shape)
    loss = optax.sigmoid_binary_cross_entropy(input, target)
    if pos_weight is not None:
        # (1 - y) softplus(x) + q y softplus(-x) = bce(x, y) + (q - 1) y softplus(-x)
        loss = loss + (pos_weight - 1) * target * optax.sigmoid_binary_cross_entropy(
            input, jnp.ones_like(input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction="mean"):
    reduction = _legacy(size_average, reduce, reduction)
    _regression_args(input, target, reduction)
    if input.ndim not in (1, 2):
        raise ValueError(f"input must be (C) or (N, C), got {input.shape}")
    loss = optax.sigmoid_binary_cross_entropy(input, target)
    if weight is not None:
        if weight.ndim != 1 or weight.shape[0] != input.shape[-1]:
            raise ValueError(f"weight must have shape (C,), got {weight.shape}")
        loss = loss * weight
    return _reduce(jnp.mean(loss, axis=-1), reduction)


# --- classification -------------------------------------------------------------------------------

def _class_shape(input, weight):
    if input.ndim == 0:
        raise ValueError("input must have a class axis: (C), (N, C) or (N, C, d1, ...)")
    axis = 0 if input.ndim == 1 else 1
    classes = input.shape[axis]
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"weight must have shape ({classes},), got {weight.shape}")
    return axis, classes


def _along(vector, axis, ndim):
    """A (C,) vector shaped to broadcast along ``axis`` of an ``ndim`` array."""
    shape = [1] * ndim
    shape[axis] = vector.shape[0]
    return vector.reshape(shape)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction)
    _floating("input", input)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    axis, classes = _class_shape(input, weight)
    eps = label_smoothing
    if jnp.issubdtype(target.dtype, jnp.floating):
        # probability targets: sum_c w_c p'_c nlp_c per row, p' = (1 - e) p + e / C
        if ignore_index != -100:
            raise ValueError("ignore_index is not supported for floating point target")
        _same_shape(input, target)
        labels = target if eps == 0 else (1 - eps) * target + eps / classes
        if weight is not None:
            labels = labels * _along(weight, axis, input.ndim)
        loss = optax.softmax_cross_entropy(input, labels, axis=axis)
        return _reduce(loss, reduction)
    if not jnp.issubdtype(target.dtype, jnp.integer):
        raise TypeError(f"target must be integer class indices or probabilities, got "
                        f"{target.dtype}")
    expected = input.shape[:axis] + input.shape[axis + 1:]
    if target.shape != expected:
        raise ValueError(f"target shape {target.shape}, expected {expected} for input "
                         f"{input.shape}")
    labels = np.asarray(target)  # concrete: the target is never differentiated
    kept = labels != ignore_index
    if np.any(kept & ((labels < 0) | (labels >= classes))):
        raise IndexError(f"target out of bounds: classes are 0..{classes - 1}")
    kept = jnp.asarray(kept)
    safe = jnp.where(kept, target, 0)
    nll = optax.softmax_cross_entropy_with_integer_labels(input, safe, axis=axis)
    w_t = kept.astype(input.dtype) if weight is None else jnp.where(kept, weight[safe], 0)
    loss = jnp.where(kept, (1 - eps) * nll * w_t if weight is not None else (1 - eps) * nll, 0)
    if eps:
        per_class = jnp.ones((classes,), input.dtype) if weight is None else weight
        smooth = optax.softmax_cross_entropy(
            input, jnp.broadcast_to(_along(per_class, axis, input.ndim), input.shape), axis=axis)
        loss = loss + jnp.where(kept, (eps / classes) * smooth, 0)
    if reduction == "mean":
        return jnp.sum(loss) / jnp.sum(w_t)
    return _reduce(loss, reduction)


# --- probabilistic --------------------------------------------------------------------------------

def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    reduction = _legacy(size_average, reduce, reduction)
    _check_reduction(reduction, _REDUCTIONS + ("batchmean",))
    _regression_args(input, target, "mean")
    # optax's argument order is the same (log-predictions first); axis=() keeps every term
    if log_target:
        terms = optax.losses.kl_divergence_with_log_targets(input, target, axis=())
    else:
        terms = optax.kl_divergence(input, target, axis=())
    if reduction == "batchmean":
        return jnp.sum(terms) / (input.shape[0] if input.ndim else 1)
    return _reduce(terms, reduction)


# --- sequence -------------------------------------------------------------------------------------

def _lengths(value, name, count):
    lengths = np.asarray(value)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got {lengths.dtype}")
    lengths = lengths.astype(np.int64).reshape(-1)
    if lengths.shape != (count,):
        raise ValueError(f"{name} must have one entry per sample ({count}), got {lengths.shape}")
    return lengths


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    _check_reduction(reduction)
    _floating("log_probs", log_probs)
    unbatched = log_probs.ndim == 2
    lp = log_probs[:, None, :] if unbatched else log_probs
    if lp.ndim != 3 or lp.shape[0] == 0 or lp.shape[1] == 0:
        raise ValueError(f"log_probs must be a non-empty (T, N, C) or (T, C), got "
                         f"{log_probs.shape}")
    frames, batch, classes = lp.shape
    if not 0 <= blank < classes:
        raise ValueError(f"blank must be in [0, {classes}), got {blank}")
    in_len = _lengths(input_lengths, "input_lengths", batch)
    tg_len = _lengths(target_lengths, "target_lengths", batch)
    if np.any(in_len < 0) or np.any(in_len > frames) or np.any(tg_len < 0):
        raise ValueError("input_lengths must lie in [0, T] and target_lengths be >= 0")
    tg = np.asarray(targets, dtype=np.int64)
    if tg.ndim == 1 and not unbatched:  # concatenated targets
        if tg.shape[0] != tg_len.sum():
            raise ValueError("concatenated targets must have length sum(target_lengths)")
        ends = np.cumsum(tg_len)
        rows = [tg[e - n:e] for e, n in zip(ends, tg_len)]
    else:
        if tg.ndim == 1 and tg.shape[0] != tg_len[0]:  # unbatched: exactly its target length
            raise ValueError(f"an unbatched 1-D target must have length target_length "
                             f"({tg_len[0]}), got {tg.shape[0]}")
        tg = tg.reshape(1, -1) if tg.ndim == 1 else tg
        if tg.shape[0] != batch or np.any(tg_len > tg.shape[1]):
            raise ValueError(f"targets {tg.shape} do not match the batch and target_lengths")
        rows = [tg[n, :tg_len[n]] for n in range(batch)]
    width = max(1, int(tg_len.max(initial=0)))
    labels = np.zeros((batch, width), np.int64)
    label_paddings = np.ones((batch, width), np.float64)
    for n, row in enumerate(rows):
        labels[n, :len(row)] = row
        label_paddings[n, :len(row)] = 0
    logit_paddings = (np.arange(frames)[None, :] >= in_len[:, None]).astype(np.float64)
    dtype = log_probs.dtype
    loss = optax.ctc_loss(jnp.transpose(lp, (1, 0, 2)), jnp.asarray(logit_paddings, dtype),
                          jnp.asarray(labels), jnp.asarray(label_paddings, dtype),
                          blank_id=blank).astype(dtype)
    if zero_infinity:
        loss = jnp.where(jnp.isinf(loss), jnp.zeros_like(loss), loss)
    if reduction == "mean":
        loss = jnp.mean(loss / jnp.asarray(np.maximum(tg_len, 1), dtype))
        return loss
    if reduction == "sum":
        return jnp.sum(loss)
    return loss[0] if unbatched else loss
