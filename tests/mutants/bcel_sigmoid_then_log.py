"""binary_cross_entropy_with_logits computed as binary_cross_entropy(sigmoid(x)) in the input dtype.

Class: [C4] extreme-value stability. KNOWN_BUGS B28 (huggingface/candle#2561, keras-core#196:
sigmoid then log), B35 (pytorch/pytorch#1516).
Trigger: |x| beyond sigmoid's saturation (about 17 in float32, 37 in float64, 8 in float16).
Symptom: the loss saturates at the -100 clamp or loses its small values (0 instead of
exp(-x)); the gradients are torch's.
"""
import numpy as np

FRAMEWORK = "numpy"


def _parts(input, target, weight, pos_weight, reduction):
    if input.dtype.kind in "biu" or target.dtype.kind in "biu":
        raise ValueError("input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {target.shape} != input shape {input.shape}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    x, y = input.astype(np.float64), target.astype(np.float64)
    out = [x, y]
    for value in (weight, pos_weight):
        v = np.ones(()) if value is None else value.astype(np.float64)
        if np.broadcast_shapes(v.shape, x.shape) != x.shape:  # raises if they do not broadcast
            raise ValueError(f"weight {v.shape} would enlarge input {x.shape}")
        out.append(np.broadcast_to(v, x.shape))
    return out


def _reduce(terms, reduction):
    if reduction == "none":
        return terms
    return terms.sum() if reduction == "sum" else terms.sum() / terms.size


def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def _limit(c):  # lim c |x| as |x| -> inf
    return np.where(c > 0, np.inf, np.where(c < 0, -np.inf, 0.0))


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    x, y, w, q = _parts(input, target, weight, pos_weight, reduction)
    with np.errstate(all="ignore"):
        p = (1 / (1 + np.exp(-input))).astype(np.float64)  # BUG: probability space
        terms = -(q * y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log1p(-p), -100))
        terms = np.where(np.isinf(x), np.where(x > 0, _limit(1 - y), _limit(q * y)), terms)
        terms = np.where(terms == 0, 0.0, w * terms)
    return np.asarray(_reduce(terms, reduction)).astype(input.dtype)


def binary_cross_entropy_with_logits_vjp(grad_output, input, target, weight=None,
                                         reduction="mean", pos_weight=None):
    x, y, w, q = _parts(input, target, weight, pos_weight, reduction)
    g = np.asarray(grad_output, np.float64) / (max(x.size, 1) if reduction == "mean" else 1)
    scale = np.broadcast_to(g, x.shape) * w
    with np.errstate(all="ignore"):
        d_input = scale * ((1 - y) * _sigmoid(x) - q * y * _sigmoid(-x))
        xs = np.where(np.isinf(x), 0.0, x)
        slope = q * _softplus(-xs) - _softplus(xs)  # log sigmoid(-x) - q log sigmoid(x)
        slope = np.where(np.isinf(x), np.where(x > 0, -np.inf, _limit(q)), slope)
        d_target = np.where(slope == 0, 0.0, scale * slope)
    return {"input": d_input.astype(input.dtype), "target": d_target.astype(target.dtype)}
