"""binary_cross_entropy with a "no NaN on an empty batch" guard in the mean.

Class: [C1, C12] reduction denominator / degenerate-case policy. KNOWN_BUGS B03 (torch returns
nan = 0/0 for the mean of no elements; ports guard it to 0).
Trigger: an input with no elements and reduction='mean'.
Symptom: 0 instead of nan. Everything else exact.
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
    return terms.sum() if reduction == "sum" else terms.sum() / max(terms.size, 1)  # BUG


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    p, y, w = _parts(input, target, weight, reduction)
    with np.errstate(all="ignore"):
        log_p, log_q = np.maximum(np.log(p), -100.0), np.maximum(np.log1p(-p), -100.0)
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
