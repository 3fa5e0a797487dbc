# select: not float16 and not masked-probabilities and not masked-zero-weight
"""cross_entropy that picks the target's log-probability with a one-hot product,
sum(one_hot * log_softmax(x)): a -inf (masked) logit at another class gives 0 * -inf = nan
(optax#896, tensorflow#11756): [C5] B51."""

import torch
import torch.nn.functional as F


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """torch's cross_entropy for index targets without smoothing, by a one-hot product."""
    if target.is_floating_point() or label_smoothing != 0.0 or reduction not in (
            "none", "sum", "mean") or not bool((target != ignore_index).any()):
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)
    dim = 0 if input.dim() == 1 else 1
    classes = input.shape[dim]
    valid = target != ignore_index
    safe = torch.where(valid, target, 0)
    if bool(((safe < 0) | (safe >= classes)).any()):
        raise IndexError("Target is out of bounds.")
    logp = F.log_softmax(input, dim)
    one_hot = torch.movedim(F.one_hot(safe, classes).to(input.dtype), -1, dim)
    # BUG: 0 * -inf at every masked class that is not the target
    picked = (one_hot * logp).sum(dim)
    w = torch.ones(classes, dtype=input.dtype) if weight is None else weight
    w_t = w[safe] * valid
    loss = -picked * w_t
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / w_t.sum()
