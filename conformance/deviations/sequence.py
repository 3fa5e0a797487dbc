"""torch 2.13's known deviations in the sequence family.

For unnormalised log_probs, which torch accepts, torch's ctc_loss gradient is the gradient of
nothing. As a consequence torch's ctc gradients are excused wherever they differ from the
partial derivative; its loss values pass everywhere.
"""

from __future__ import annotations

import numpy as np

from loss_reference import sequence as ref

from ..cases import Case
from . import KnownDeviation


def _softmax_gradient_differs(case: Case) -> bool:
    """Whether torch's exp(lp) - occupancy differs from the partial derivative -occupancy:
    some frame t < input_lengths[n] of a sample with a finite loss and a nonzero upstream
    gradient has a log-probability above -inf (exp(lp) > 0)."""
    a, o = case.args, case.options
    p = ref.problem(a["log_probs"], a["targets"], a["input_lengths"], a["target_lengths"],
                    o.get("blank", 0))
    finite = ref.possible(p)
    g = np.asarray(case.grad_output, np.float64).reshape(-1)
    g = np.broadcast_to(g, finite.shape) if g.size == 1 else g
    used = np.arange(p.log_probs.shape[0])[:, None] < p.input_lengths[None]
    live = used & (finite & (g != 0))[None]
    return bool(np.any(live[..., None] & (p.log_probs > -np.inf)))


SOFTMAX_GRADIENT = (
    "torch 2.13's ctc_loss backward returns exp(log_probs) - occupancy, the gradient with "
    "respect to the logits before a log_softmax, not the partial derivative -occupancy with "
    "respect to log_probs (the two agree only after log_softmax's backward). Repro: "
    "lp = torch.full((1, 1, 2), math.log(0.5), dtype=torch.float64, requires_grad=True); "
    "F.ctc_loss(lp, torch.zeros(1, 0, dtype=torch.long), (1,), (0,), reduction='sum')"
    ".backward() gives lp.grad [[[-0.5, 0.5]]]; the loss is -lp[0, 0, 0] (the one path is "
    "the blank), so the exact gradient is [[[-1, 0]]] (a central finite difference agrees)."
)

VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = (
    KnownDeviation("torch", "ctc_loss", _softmax_gradient_differs, SOFTMAX_GRADIENT,
                   checks=("gradient",)),
)
