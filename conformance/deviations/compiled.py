"""Known deviations of ``--impl=torch-compile`` (torch 2.13.0, inductor on the CPU).

Found by the suite and confirmed by hand against eager torch on the same inputs, in a fresh
process (no suite code involved). Eager torch's own deviations (impl ``torch``, in the family
modules) do not apply by themselves: a compiled function runs inductor's kernels, not eager's,
and inherits an eager deviation (``INHERITED``) only where the suite shows the same cases
failing the same way.

Not a family module: ``all_deviations`` reads it after the family modules.
Invalid calls the compiled functions accept (soft_margin_loss with int64 input, or with a target
that broadcasts to a larger shape) are not listed: invalid-call checks admit no deviations.
"""

from __future__ import annotations

import numpy as np

from ..cases import Case
from . import KnownDeviation
from .binary import nan_at_infinite_logit, sigmoid_flushes
from .classification import masked_class_with_zero_coefficient
from .pointwise import soft_margin_exp_overflows
from .probabilistic import kl_zero_target_nan

IMPL = "torch-compile"
EMPTY_MEAN_BACKWARD_FAILS = ("mse_loss", "huber_loss", "smooth_l1_loss")


def _weighted(case: Case) -> bool:
    return case.args.get("weight") is not None


def _empty_mean(case: Case) -> bool:
    x = case.args.get("input")
    return x is not None and x.size == 0 and case.options.get("reduction", "mean") == "mean"


def _soft_margin_cancels(case: Case) -> bool:
    """y x > 2 somewhere: there 1 - sigmoid(y x), the form inductor's gradient takes, has lost
    more than a few bits to cancellation (the relative error grows like exp(y x))."""
    x = np.asarray(case.args["input"], dtype=np.float64)
    y = np.asarray(case.args["target"], dtype=np.float64)
    if x.dtype.kind not in "fc" or x.size == 0:
        return False
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.any(np.broadcast_to(y, x.shape) * x > 2))


def _margin_terminated_or_unbatched(case: Case) -> bool:
    """A -1 terminator in some target row, or an unbatched input with reduction 'none'."""
    x, t = case.args["input"], np.asarray(case.args["target"])
    return bool(np.any(t == -1)) or (x.ndim == 1 and case.options.get("reduction") == "none")


def _as_eager(loss: str, applies, repro: str, checks=("value", "gradient")) -> KnownDeviation:
    """An eager torch deviation the compiled function shares: the same cases, the same way."""
    return KnownDeviation(
        impl=IMPL, loss=loss, applies=applies, checks=checks,
        reason=f"inherited from eager torch (the same cases fail the same way): {repro}")


INHERITED = (
    _as_eager("cross_entropy", masked_class_with_zero_coefficient,
              "a masked class (-inf logit) with a zero coefficient gives 0 * -inf = nan: "
              "torch.compile(F.cross_entropy)(tensor([[1., -inf, 2.]]), tensor([[1., 0., 0.]]))"
              " is nan, as eager, exact 1.3133"),
    _as_eager("binary_cross_entropy_with_logits", nan_at_infinite_logit,
              "nan at infinite logits: x = [inf, -inf, -inf], y = [1, 0, 1] gives "
              "[nan, nan, nan], as eager, exact [0, 0, inf]"),
    _as_eager("binary_cross_entropy_with_logits", sigmoid_flushes,
              "the input gradient flushes to 0 where exp(-x) overflows: float32 x = -100, "
              "y = 0, 'sum' gives 0, as eager, exact 3.7e-44", checks=("gradient",)),
    _as_eager("kl_div", kl_zero_target_nan,
              "a zero target probability against x = -inf (or a target -inf with log_target) "
              "gives nan, as eager, exact 0: x = [-inf, 0.5], t = [0, 0.2], 'none' gives "
              "[nan, -0.42]"),
)

VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = INHERITED + (
    KnownDeviation(
        impl=IMPL, loss="l1_loss", applies=_weighted,
        reason="torch.compile drops l1_loss's weight: the compiled function returns the "
               "unweighted loss and gradient (mse_loss and huber_loss keep theirs). "
               "torch.compile(F.l1_loss)(x, y, reduction='none', weight=w) with x = [1., 2.], "
               "y = [0., 0.], w = [0., 1.] gives [1., 2.], eager and exact [0., 2.]; 'mean' "
               "gives 1.5, exact 2.0. Same with dynamic=True and dynamic=None"),
    *(KnownDeviation(
        impl=IMPL, loss=loss, applies=_empty_mean,
        reason=f"the backward of {loss} on an empty input with reduction 'mean' fails to "
               "compile: BackendCompilerFailed (ZeroDivisionError: float division by zero, "
               "in a symbolic size hint); eager gives an empty gradient. "
               f"x = torch.zeros(0, 4, requires_grad=True); torch.compile(F.{loss})(x, "
               "torch.zeros(0, 4)).backward() raises, with dynamic=True and dynamic=None "
               "(l1_loss is not affected)",
        checks=("gradient",)) for loss in EMPTY_MEAN_BACKWARD_FAILS),
    KnownDeviation(
        impl=IMPL, loss="soft_margin_loss", applies=soft_margin_exp_overflows,
        reason="inherited from eager torch (the same cases fail the same way): the compiled "
               "soft_margin_loss forms log1p(exp(-y x)), so where exp(-y x) overflows (-y x > "
               "88.7 in float32) it returns inf although the loss is about -y x; float32 "
               "x = -100, y = 1 gives inf, exact 100 (unlike eager its gradient there is right)",
        checks=("value",)),
    KnownDeviation(
        impl=IMPL, loss="soft_margin_loss", applies=_soft_margin_cancels,
        reason="the compiled gradient of soft_margin_loss is formed through 1 - sigmoid(y x), "
               "which cancels where y x is large: float32 x = [16, 20, 30], y = 1, 'sum' gives "
               "[-1.19e-7, 0, 0], eager and exact [-1.125e-7, -2.06e-9, -9.36e-14]; at soft "
               "targets (y x about 3) 25-36 ulp where eager stays inside the tolerance",
        checks=("gradient",)),
    KnownDeviation(
        impl=IMPL, loss="multilabel_margin_loss", applies=_margin_terminated_or_unbatched,
        reason="the compiled multilabel_margin_loss does not stop at the -1 that ends a "
               "target row's labels, and returns shape (1,), not (), for an unbatched input "
               "with reduction 'none': x = [[0.1, 0.2, 0.4, 0.8]], target [[3, 0, -1, 1]] "
               "gives 2.05, eager and exact 0.85; target [[-1, 0, 1, 2]] (no labels) gives "
               "5.1, exact 0; gradients likewise (seen: 4 times the exact). Same with "
               "dynamic=True and dynamic=None"),
)
