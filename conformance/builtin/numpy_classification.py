"""Built-in NumPy candidate, classification family: cross_entropy and nll_loss.

Registered in ``numpy_losses`` (``--impl=numpy``) and following its protocol and numeric
policy: torch's signatures (legacy ``size_average`` / ``reduce`` included), float inputs of any
dtype converted exactly to float64, all arithmetic in float64, each result rounded once to its
argument's dtype, ``<loss>_vjp`` gradients (the input's; with probability targets also the
target's and the class weight's, as torch), ``ValueError`` for invalid
arguments. The semantics are the suite's (conformance/specs/classification.py): index targets
with ignore_index, probability targets (cross_entropy), class weights, label smoothing, the
weighted mean sum(w_t l) / sum(w_t), and a masked class (-inf logit) whose coefficient is 0
contributing nothing.
"""

import numpy as np

from .numpy_reduction import product_over, resolve_reduction as _reduction

__all__ = ["cross_entropy", "cross_entropy_vjp", "nll_loss", "nll_loss_vjp"]

_ieee = np.errstate(all="ignore")  # inf and nan are the intended IEEE results


class _Call:
    """A validated call laid out as rows: x (M, C), targets, weights, what counts."""

    def __init__(self, fn, input, target, weight, ignore_index, smoothing, allow_soft):
        if input.dtype.kind in "biu":
            raise ValueError(f"{fn}: input must be floating, got {input.dtype}")
        if input.ndim == 0:
            raise ValueError(f"{fn}: input must have a class axis, got a 0-d array")
        self.shape = input.shape
        self.classes = c = input.shape[0] if input.ndim == 1 else input.shape[1]
        batch = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
        self.batch = batch
        self.x = self._rows(np.asarray(input, np.float64))
        m = self.x.shape[0]
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {smoothing}")
        self.smoothing = float(smoothing)
        self.weight = np.ones(c)
        if weight is not None:
            if weight.shape != (c,):
                raise ValueError(f"{fn}: weight must have shape ({c},), got {weight.shape}")
            self.weight = np.asarray(weight, np.float64)
        self.soft = target.dtype.kind not in "biu"  # float16/32/64 or ml_dtypes.bfloat16
        if self.soft:
            if not allow_soft:
                raise ValueError(f"{fn}: target must hold class indices, got {target.dtype}")
            if target.shape != input.shape:
                raise ValueError(f"{fn}: a probability target must have the input's shape "
                                 f"{input.shape}, got {target.shape}")
            if ignore_index != -100:
                raise ValueError(f"{fn}: ignore_index is not supported with probability "
                                 "targets")
            self.p = self._rows(np.asarray(target, np.float64))
            self.valid = np.ones(m, dtype=bool)
            self.t = np.zeros(m, dtype=np.int64)
            return
        if target.dtype.kind not in "iu":
            raise ValueError(f"{fn}: target must hold integer class indices, got {target.dtype}")
        if target.shape != batch:
            raise ValueError(f"{fn}: target must have shape {batch}, got {target.shape}")
        t = target.reshape(-1).astype(np.int64)
        self.valid = t != ignore_index
        bad = self.valid & ((t < 0) | (t >= c))
        if bad.any():
            raise ValueError(f"{fn}: target {t[bad][0]} is out of bounds for {c} classes")
        self.t = np.where(self.valid, t, 0)

    def _rows(self, values):
        c = self.classes
        return values.reshape(1, c) if values.ndim == 1 else np.moveaxis(values, 1, -1).reshape(
            -1, c)

    def to_input(self, rows):
        """(M, C) rows back to the input's shape."""
        if len(self.shape) == 1:
            return rows.reshape(self.shape)
        moved = rows.reshape((self.shape[0],) + self.shape[2:] + (self.shape[1],))
        return np.moveaxis(moved, -1, 1)

    def target_weights(self):
        """(M,) w_t of the rows that count, 0 elsewhere."""
        return np.where(self.valid, self.weight[self.t], 0.0)


def _times(coefficient, values):
    """coefficient * values, with a zero coefficient times an infinite value giving 0 (a masked
    class whose term vanishes in the limit)."""
    return np.where((coefficient == 0) & np.isinf(values), 0.0, coefficient * values)


def _log_softmax(x):
    """(x - m) - log(sum exp(x - m)), m the row max: exact differences, shift invariant; nan
    for a row with a +inf logit or without a finite one (no log-softmax)."""
    if x.shape[1] == 0:
        return x
    m = np.max(x, axis=1, keepdims=True)
    undefined = ~np.isfinite(m)
    shifted = x - np.where(undefined, 0.0, m)
    logp = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return np.where(undefined, np.nan, logp)


def _ce_parts(call):
    """(nll part (M,), smoothing part (M,) or None, log-probabilities) of cross_entropy."""
    logp = _log_softmax(call.x)
    rows = np.arange(call.x.shape[0])
    if call.soft:
        q = call.weight[None, :] * ((1 - call.smoothing) * call.p
                                    + call.smoothing / call.classes)
        return np.sum(_times(q, -logp), axis=1), None, logp
    nll = np.where(call.valid, _times(call.target_weights(), -logp[rows, call.t]), 0.0)
    if not call.smoothing:
        return nll, None, logp
    smooth = np.sum(_times(np.broadcast_to(call.weight, logp.shape), -logp), axis=1)
    return nll, np.where(call.valid, smooth, 0.0), logp


def _combine(call, nll, smooth, reduction):
    """torch's (1 - e) nll + (e / C) smooth, reduced; a mean divides both parts by W."""
    e, c = call.smoothing, call.classes
    if reduction == "none":
        rows = nll if smooth is None else (1 - e) * nll + e / c * smooth
        return rows.reshape(call.batch)
    a = np.sum(nll)
    b = None if smooth is None else np.sum(smooth)
    if reduction == "mean":
        divisor = _mean_divisor(call)
        a = np.float64(a) / divisor
        b = None if b is None else np.float64(b) / divisor
    return a if b is None else (1 - e) * a + e / c * b


def _mean_divisor(call):
    """What 'mean' divides by: the batch size with probability targets, else sum of w_t."""
    return float(call.x.shape[0]) if call.soft else np.sum(call.target_weights())


def cross_entropy_mean_divisor(input, target, weight=None, ignore_index=-100):
    """What ``cross_entropy``'s 'mean' divides by (the batch size with probability targets,
    else the sum of the counted rows' w_t), for a caller that divides last."""
    return _mean_divisor(_Call("cross_entropy", input, target, weight, ignore_index, 0.0, True))


def _upstream(call, grad_output, reduction):
    """(per-row upstream gradient (M,), 0 at ignored rows; what it is divided by: the mean's
    divisor, else 1), kept apart for ``product_over``: g / sum(w_t) overflowed for a
    subnormal sum of weights where its product with a row's slope does not."""
    g = np.asarray(grad_output, np.float64)
    expected = call.batch if reduction == "none" else ()
    if g.shape != expected:
        raise ValueError(f"grad_output has shape {g.shape}, expected {expected}")
    g = np.broadcast_to(g.reshape(-1) if reduction == "none" else g, (call.x.shape[0],))
    divisor = _mean_divisor(call) if reduction == "mean" else 1.0
    return np.where(call.valid, g, 0.0), divisor


@_ieee
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction="mean", label_smoothing=0.0):
    """Cross entropy of logits, as ``F.cross_entropy``: index or probability targets."""
    reduction = _reduction(size_average, reduce, reduction)
    call = _Call("cross_entropy", input, target, weight, ignore_index, label_smoothing, True)
    nll, smooth, _ = _ce_parts(call)
    return np.asarray(_combine(call, nll, smooth, reduction)).astype(input.dtype)


@_ieee
def cross_entropy_vjp(grad_output, input, target, weight=None, size_average=None,
                      ignore_index=-100, reduce=None, reduction="mean", label_smoothing=0.0):
    """Gradients of ``cross_entropy``: in its input, and with probability targets also in the
    target, a (1 - e) w_c nlp_c, and the weight (when given), sum over rows of a p'_c nlp_c
    (torch differentiates nothing else of an index-target call). A zero coefficient times a
    masked class's infinite nlp gives 0 (the limit)."""
    reduction = _reduction(size_average, reduce, reduction)
    call = _Call("cross_entropy", input, target, weight, ignore_index, label_smoothing, True)
    _, _, logp = _ce_parts(call)
    a, divisor = _upstream(call, grad_output, reduction)
    a = a[:, None]
    softmax = np.exp(logp)
    e, c = call.smoothing, call.classes
    if call.soft:
        q = call.weight[None, :] * ((1 - e) * call.p + e / c)
        grad = product_over((a, softmax * q.sum(axis=1, keepdims=True) - q), divisor)
    else:
        one_hot = np.zeros(logp.shape)
        one_hot[np.arange(logp.shape[0]), call.t] = 1.0
        # w_t a factor of its own: a subnormal w_t times a probability underflowed
        grad = product_over((a, 1 - e, call.weight[call.t][:, None], softmax - one_hot),
                            divisor)
        if e:
            grad = grad + product_over(
                (a, e / c, softmax * call.weight.sum() - call.weight[None, :]), divisor)
    grad = np.where(call.valid[:, None], grad, 0.0)
    grads = {"input": call.to_input(grad).astype(input.dtype)}
    if call.soft:
        nlp = -logp
        d_target = _times_over((a, (1 - e) * call.weight[None, :]), nlp, divisor)
        grads["target"] = call.to_input(d_target).astype(target.dtype)
        if weight is not None:
            q = (1 - e) * call.p + e / c
            grads["weight"] = np.sum(_times_over((a, q), nlp, divisor), axis=0).astype(
                weight.dtype)
    return grads


def _times_over(coefficients, values, divisor):
    """``_times`` of the coefficients' product and ``values``, over ``divisor``
    (``product_over``): 0 where a coefficient is 0 and the value infinite."""
    zero = np.zeros(np.shape(values), dtype=bool)
    for coefficient in coefficients:
        zero = zero | (coefficient == 0)
    return np.where(zero & np.isinf(values), 0.0,
                    product_over(tuple(coefficients) + (values,), divisor))


@_ieee
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities, as ``F.nll_loss``: -w_t x_t per row."""
    reduction = _reduction(size_average, reduce, reduction)
    call = _Call("nll_loss", input, target, weight, ignore_index, 0.0, False)
    x_t = call.x[np.arange(call.x.shape[0]), call.t]
    nll = np.where(call.valid, -call.target_weights() * x_t, 0.0)
    return np.asarray(_combine(call, nll, None, reduction)).astype(input.dtype)


@_ieee
def nll_loss_vjp(grad_output, input, target, weight=None, size_average=None, ignore_index=-100,
                 reduce=None, reduction="mean"):
    """Gradient of ``nll_loss`` in its input: -g w_t / divisor at each row's target, else 0."""
    reduction = _reduction(size_average, reduce, reduction)
    call = _Call("nll_loss", input, target, weight, ignore_index, 0.0, False)
    a, divisor = _upstream(call, grad_output, reduction)
    grad = np.zeros(call.x.shape)
    rows = np.arange(call.x.shape[0])
    grad[rows, call.t] = np.where(call.valid, -product_over((a, call.weight[call.t]), divisor),
                                  0.0)
    return {"input": call.to_input(grad).astype(input.dtype)}
