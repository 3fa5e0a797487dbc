"""binary_cross_entropy written from the textbook formula, without torch's clamp of the logs
at -100.

Class: [C4] extreme-value stability. KNOWN_BUGS B31 (tracel-ai/burn#2739 and #2741: BCE on
probabilities without the -100 clamp).
Trigger: a probability exactly 0 or 1 (or below exp(-100)) on the wrong side of its target.
Symptom: inf where torch gives 100 per element (nan, 0 * -inf, where the other target weight is
0 and p = 0 or 1). Exact elsewhere.
"""
import numpy as np

FRAMEWORK = "numpy"


def _parts(input, target, weight, reduction):
    if input.dtype.kind in "biu" or target.dtype.kind in "biu":
        raise ValueError("input and target must be floating")
    if input.shape != target.shape:
        raise ValueError(f"target shape {target.shape} != input shape {input.shape}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    p, y = input.astype(np.float64), target.astype(np.float64)
    if not (np.all((p >= 0) & (p <= 1)) and np.all((y >= 0) & (y <= 1))):
        raise ValueError("all elements of input and target should be between 0 and 1")
    w = np.ones(()) if weight is None else weight.astype(np.float64)
    if np.broadcast_shapes(w.shape, p.shape) != p.shape:  # raises if they do not broadcast
        raise ValueError(f"weight {w.shape} would enlarge input {p.shape}")
    return p, y, np.broadcast_to(w, p.shape)


def _reduce(terms, reduction):
    if reduction == "none":
        return terms
    return terms.sum() if reduction == "sum" else terms.sum() / terms.size


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    p, y, w = _parts(input, target, weight, reduction)
    with np.errstate(all="ignore"):
        log_p, log_q = np.log(p), np.log1p(-p)  # BUG: no clamp at -100
        terms = -w * (y * log_p + (1 - y) * log_q)
    return np.asarray(_reduce(terms, reduction)).astype(input.dtype)


def binary_cross_entropy_vjp(grad_output, input, target, weight=None, reduction="mean"):
    p, y, w = _parts(input, target, weight, reduction)
    g = np.asarray(grad_output, np.float64) / (max(p.size, 1) if reduction == "mean" else 1)
    scale = np.broadcast_to(g, p.shape) * w
    with np.errstate(all="ignore"):
        d_input = scale * (p - y) / np.maximum(p * (1 - p), float(np.float32(1e-12)))
        slope = np.log1p(-p) - np.log(p)  # -logit(p), as torch
        d_target = np.where(slope == 0, 0.0, scale * slope)
    return {"input": d_input.astype(input.dtype), "target": d_target.astype(target.dtype)}
