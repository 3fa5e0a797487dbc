"""Apple's cut-cross-entropy (``pip install cut-cross-entropy``) under torch's
``linear_cross_entropy`` name and signature: a published fused linear cross-entropy, as a
candidate.

    pip install cut-cross-entropy
    pytest conformance --impl=examples/cce_losses.py --loss=linear_cross_entropy \
        --check-timeout=300

(``--check-timeout``: a call that makes torch.compile compile a new graph takes seconds on the
CPU, far beyond the time the suite otherwise allows a call before it deems it hung.)

cut-cross-entropy's ``linear_cross_entropy(e, c, targets, ignore_index=-100, softcap=None,
reduction='mean', shift=False, filter_eps='high', impl=...)`` takes the tokens e (N, D), the
classifier c (C, D) and index targets. Its ``impl="cce"`` is a Triton kernel for CUDA; on the
CPU this adapter uses ``impl="torch_compile"`` (the same function through torch.compile: the
logits e c^T in the inputs' dtype, then cross_entropy in float32), and ``impl="cce"`` where the
tensors are on a CUDA device. This file only adapts, and says where:

- linear_bias b: appended to the classifier as one more feature whose token value is 1
  ([e, 1] [c, b]^T = e c^T + b, exactly);
- weight (class weights): cut-cross-entropy has none; composed here from its 'none' output,
  w_t times each token's loss, 'mean' divided by the sum of the counted tokens' w_t (torch's
  definition);
- the output is cast back to the inputs' dtype (cut-cross-entropy returns float32 losses for
  half-precision inputs; torch returns the inputs' dtype);
- ignore_index None means -100 (torch's convention).

Not provided by cut-cross-entropy, so rejected here with NotImplementedError (the suite then
reports those cases as failures: a user relying on them learns it): probability targets and
label_smoothing. See examples/README.md for what the suite found.
"""

from __future__ import annotations

import torch
import torch._dynamo
from cut_cross_entropy import linear_cross_entropy as cce_linear_cross_entropy

FRAMEWORK = "torch"
# The suite calls with more dtypes and layouts than a training run; torch.compile recompiles
# for each (cut-cross-entropy compiles with fullgraph=True, which fails past the limit).
torch._dynamo.config.recompile_limit = 256
DEFAULT_IGNORE_INDEX = -100


def _impl(tensor) -> str:
    return "cce" if tensor.is_cuda else "torch_compile"


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0):
    """torch's linear_cross_entropy computed by cut-cross-entropy (see the module's notes)."""
    if target.is_floating_point():
        raise NotImplementedError("cut-cross-entropy takes class indices, not probabilities")
    if label_smoothing:
        raise NotImplementedError("cut-cross-entropy has no label_smoothing")
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"{reduction!r} is not a valid value for reduction")
    if weight is not None and weight.shape != linear_weight.shape[:1]:
        raise ValueError(f"weight must have one entry per class ({linear_weight.shape[0]}), "
                         f"got {tuple(weight.shape)}")  # the adapter's own weight: its check
    ignore = DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index
    e, c = input, linear_weight
    if linear_bias is not None:
        e = torch.cat([e, torch.ones_like(e[..., :1])], dim=-1)
        c = torch.cat([c, linear_bias[:, None]], dim=-1)
    unbatched = e.dim() == 1
    if unbatched:
        e, target = e[None], target.reshape(1)
    inner = "none" if weight is not None else reduction
    loss = cce_linear_cross_entropy(e, c, target, ignore_index=ignore, reduction=inner,
                                    impl=_impl(e))
    if weight is not None:
        counted = target != ignore
        w_t = torch.where(counted, weight[torch.where(counted, target, 0)], 0)
        loss = loss * w_t
        if reduction == "sum":
            loss = loss.sum()
        elif reduction == "mean":
            loss = loss.sum() / w_t.sum()
    if unbatched and reduction == "none":
        loss = loss[0]
    return loss.to(input.dtype)
