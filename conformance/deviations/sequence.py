"""torch 2.13's known deviations in the sequence family.

For unnormalised log_probs, which torch accepts, torch's ctc_loss gradient is the gradient of
nothing. As a consequence torch's ctc gradients are excused wherever they differ from the
partial derivative; its loss values pass everywhere. Apart from that, its gradient is nan at a
log-probability of -inf in a frame the sample uses, whatever the upstream gradient.
"""

from __future__ import annotations

import numpy as np

from loss_reference import ctc_lattice as lattice

from ..cases import Case
from . import KnownDeviation


def _softmax_gradient_differs(case: Case) -> bool:
    """Whether torch's exp(lp) - occupancy differs from the partial derivative -occupancy:
    some frame t < input_lengths[n] of a sample with a finite loss and a nonzero upstream
    gradient has a log-probability above -inf (exp(lp) > 0)."""
    a, o = case.args, case.options
    p = lattice.problem(a["log_probs"], a["targets"], a["input_lengths"], a["target_lengths"],
                    o.get("blank", 0))
    finite = lattice.possible(p)
    g = np.asarray(case.grad_output, np.float64).reshape(-1)
    g = np.broadcast_to(g, finite.shape) if g.size == 1 else g
    used = np.arange(p.log_probs.shape[0])[:, None] < p.input_lengths[None]
    live = used & (finite & (g != 0))[None]
    return bool(np.any(live[..., None] & (p.log_probs > -np.inf)))


def _minus_infinity_in_a_used_frame(case: Case) -> bool:
    """Whether a frame t < input_lengths[n] of a sample with a finite loss has a
    log-probability of -inf (torch's gradient there is exp(lcab + nll - lp) with lcab and lp
    both -inf: nan)."""
    a, o = case.args, case.options
    p = lattice.problem(a["log_probs"], a["targets"], a["input_lengths"], a["target_lengths"],
                    o.get("blank", 0))
    used = np.arange(p.log_probs.shape[0])[:, None] < p.input_lengths[None]
    live = used & lattice.possible(p)[None]
    return bool(np.any(live[..., None] & (p.log_probs == -np.inf)))


SOFTMAX_GRADIENT = (
    "torch 2.13's ctc_loss backward returns exp(log_probs) - occupancy, the gradient with "
    "respect to the logits before a log_softmax, not the partial derivative -occupancy with "
    "respect to log_probs (the two agree only after log_softmax's backward). Repro: "
    "lp = torch.full((1, 1, 2), math.log(0.5), dtype=torch.float64, requires_grad=True); "
    "F.ctc_loss(lp, torch.zeros(1, 0, dtype=torch.long), (1,), (0,), reduction='sum')"
    ".backward() gives lp.grad [[[-0.5, 0.5]]]; the loss is -lp[0, 0, 0] (the one path is "
    "the blank), so the exact gradient is [[[-1, 0]]] (a central finite difference agrees)."
)

MINUS_INFINITY_GRADIENT = (
    "torch 2.13's ctc_loss gradient is nan at a log-probability of -inf in a frame the sample "
    "uses (its backward computes exp(lcab + nll - lp) for every class, with lcab and lp both "
    "-inf for a class no path takes), even where the upstream gradient is 0; the loss does not "
    "depend on such a log-probability (no path with a finite probability goes through it), so "
    "the exact gradient is 0. Repro: lp = torch.tensor([[[math.log(0.5), math.log(0.5), "
    "-math.inf]]], dtype=torch.float64, requires_grad=True); F.ctc_loss(lp, torch.tensor([[1]]), "
    "(1,), (1,), reduction='none').mul(0).sum().backward() gives lp.grad [[[0, -0, nan]]] "
    "(quick profile, seed 12)."
)

VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = (
    KnownDeviation("torch", "ctc_loss", _softmax_gradient_differs, SOFTMAX_GRADIENT,
                   checks=("gradient",)),
    KnownDeviation("torch", "ctc_loss", _minus_infinity_in_a_used_frame,
                   MINUS_INFINITY_GRADIENT, checks=("gradient",)),
)
