"""Built-in NumPy candidate, sequence family: ctc_loss.

Registered in ``numpy_losses`` (``--impl=numpy``) and following its protocol and numeric
policy: torch's signature, float inputs of any dtype converted exactly to float64, the alpha
and beta recursions in log space in float64, each result rounded once to log_probs' dtype,
``ctc_loss_vjp`` for the gradient, ``ValueError`` for the calls torch rejects. The gradient is
the partial derivative with respect to log_probs, minus the posterior occupancy of each class
(the spec's contract, conformance/specs/sequence.py), not torch's exp(lp) - occupancy.
"""

import numpy as np

from loss_reference.sequence import log_space_estimates

from .numpy_reduction import REDUCTIONS

__all__ = ["ctc_loss", "ctc_loss_vjp"]

_ieee = np.errstate(all="ignore")  # -inf log-probabilities and +inf losses are intended


def _int_lengths(name, values, batch):
    """Lengths as an int64 vector of the batch size; ValueError for floats or a wrong count."""
    array = np.asarray(values)
    if array.dtype.kind not in "iu" and array.size:
        raise ValueError(f"ctc_loss: {name} must be integral, got {array.dtype}")
    array = array.astype(np.int64).reshape(-1)
    if array.size != batch:
        raise ValueError(f"ctc_loss: {name} must be of size batch_size ({batch}), got "
                         f"{array.size}")
    return array


def _parse(log_probs, targets, input_lengths, target_lengths, blank, reduction):
    """Validated (lp (T, N, C) float64, label rows, il, tl, unbatched)."""
    if log_probs.dtype.kind in "biu":
        raise ValueError(f"ctc_loss: log_probs must be floating, got {log_probs.dtype}")
    if log_probs.ndim not in (2, 3):
        raise ValueError(f"ctc_loss: log_probs must be 2-D or 3-D, got {log_probs.ndim}-D")
    if log_probs.size == 0:
        raise ValueError("ctc_loss: log_probs must not be empty")
    if reduction not in REDUCTIONS:
        raise ValueError(f"ctc_loss: unknown reduction {reduction!r}")
    unbatched = log_probs.ndim == 2
    lp = np.asarray(log_probs, dtype=np.float64)
    lp = lp[:, None, :] if unbatched else lp
    frames, batch, classes = lp.shape
    if not 0 <= blank < classes:
        raise ValueError(f"ctc_loss: blank {blank} is not in [0, {classes})")
    il = _int_lengths("input_lengths", input_lengths, batch)
    tl = _int_lengths("target_lengths", target_lengths, batch)
    if (il < 0).any() or (il > frames).any():
        raise ValueError(f"ctc_loss: input_lengths must lie in [0, {frames}]")
    if (tl < 0).any():
        raise ValueError("ctc_loss: target_lengths must be non-negative")
    t = np.asarray(targets)
    if t.dtype.kind not in "iu" and t.size:
        raise ValueError("ctc_loss: targets must be integers")
    t = t.astype(np.int64)
    if t.ndim == 2:
        if t.shape[0] != batch or t.shape[1] < tl.max(initial=0):
            raise ValueError(f"ctc_loss: targets {t.shape} do not fit N = {batch} and "
                             f"target_lengths {tl.tolist()}")
        rows = [t[n, :tl[n]] for n in range(batch)]
    elif t.ndim == 1:
        if t.size != tl.sum():
            raise ValueError(f"ctc_loss: 1-D targets of {t.size} for sum(target_lengths) = "
                             f"{tl.sum()}")
        ends = np.cumsum(tl)
        rows = [t[end - length:end] for end, length in zip(ends, tl)]
    else:
        raise ValueError(f"ctc_loss: targets must be 1-D or 2-D, got {t.ndim}-D")
    return lp, rows, il, tl, unbatched


def _divisors(tl, reduction):
    if reduction != "mean":
        return np.ones(tl.shape)
    return np.maximum(tl, 1) * float(tl.size)


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    """CTC loss as torch.nn.functional.ctc_loss, computed in float64 log space."""
    lp, rows, il, tl, unbatched = _parse(log_probs, targets, input_lengths, target_lengths,
                                         blank, reduction)
    losses, _ = log_space_estimates(lp, rows, il, blank)
    if zero_infinity:
        losses = np.where(np.isinf(losses), 0.0, losses)
    if reduction == "none":
        out = losses[0] if unbatched else losses
    elif reduction == "sum":
        out = losses.sum()
    else:
        out = (losses / _divisors(tl, reduction)).sum()
    return np.asarray(out).astype(log_probs.dtype)


def ctc_loss_vjp(grad_output, log_probs, targets, input_lengths, target_lengths, blank=0,
                 reduction="mean", zero_infinity=False):
    """{'log_probs': gradient}: -upstream / divisor times each class's posterior occupancy at
    the frames inside the input length; nan there for an infinite loss (0 with
    zero_infinity)."""
    lp, rows, il, tl, unbatched = _parse(log_probs, targets, input_lengths, target_lengths,
                                         blank, reduction)
    losses, occupancy = log_space_estimates(lp, rows, il, blank)
    g = np.asarray(grad_output, dtype=np.float64).reshape(-1)
    g = np.broadcast_to(g, tl.shape) if g.size == 1 else g
    grad = -(g / _divisors(tl, reduction))[None, :, None] * occupancy
    running = np.arange(lp.shape[0])[:, None] < il[None]
    undefined = running & np.isinf(losses)[None] & (not zero_infinity)
    grad = np.where(undefined[..., None], np.nan, grad)
    if unbatched:
        grad = grad[:, 0]
    return {"log_probs": grad.astype(log_probs.dtype)}
