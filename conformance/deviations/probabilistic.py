"""torch 2.13's known deviations in the probabilistic family.

torch writes all three losses as compositions of tensor operations (kl_div: xlogy(t, t) - t x
or exp(t) (t - x); poisson_nll_loss: exp(x) - y x or x - y log(x + eps), plus a masked Stirling
term; gaussian_nll_loss: (log v + (x - y)^2 / v) / 2), so every intermediate is rounded to the
input dtype, and autograd's backward forms its own (v^2, y / z, ...). The predicates below
recompute those intermediates in float64 and name a case only where one of them leaves the
dtype's range (or, for eps, rounds to nothing) while the exact result need not.
"""

from __future__ import annotations

import numpy as np

from loss_reference.formats import FORMATS
from loss_reference.probabilistic import clamped_var

from ..cases import Case, round_to
from . import KnownDeviation

_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}


def _arrays(case: Case):
    return (np.asarray(case.args["input"], np.float64),
            np.asarray(case.args["target"], np.float64))


def _leaves_range(case: Case, quantities) -> bool:
    """Whether any intermediate (finite inputs only) overflows the dtype or is nan."""
    limit = FORMATS[case.dtype].max_finite
    return any(bool(np.any(np.isnan(q) | (np.abs(q) > limit))) for q in quantities)


def _upstream_over_n(case: Case, shape):
    """|g| / divisor: what torch's backward multiplies the elementwise slopes by first."""
    g = np.abs(np.asarray(case.grad_output if case.grad_output is not None else 1.0))
    n = {"mean": max(int(np.prod(shape)), 1),
         "batchmean": shape[0] if len(shape) and shape[0] else 1}.get(
             case.options.get("reduction"), 1)
    return np.broadcast_to(g / n, shape)


def kl_zero_target_nan(case: Case) -> bool:
    """A zero target probability against an infinite factor: t = 0 with x = -inf, or
    t = -inf (log_target)."""
    x, t = _arrays(case)
    if case.options.get("log_target", False):
        # exp(t) that rounds to 0 in the dtype is such a zero too, against x = -inf
        with np.errstate(**_QUIET):
            vanishes = round_to(np.exp(np.where(np.isfinite(t), t, 0.0)), case.dtype) == 0
        return bool(np.any(np.isneginf(t) | (vanishes & np.isneginf(x))))
    return bool(np.any((t == 0) & np.isneginf(x)))


@np.errstate(**_QUIET)
def _kl_intermediate_overflows(case: Case) -> bool:
    x, t = _arrays(case)
    g = _upstream_over_n(case, x.shape)
    ok = np.isfinite(x) & np.isfinite(t)
    x, t, g = x[ok], t[ok], g[ok]
    if case.options.get("log_target", False):
        e = np.exp(t)
        quantities = [e, t - x, e * (t - x), e * (t - x + 1), g * (t - x), g * (t - x) * e]
    else:
        logs = np.log(np.where(t > 0, t, 1.0))
        quantities = [t * x, t * logs, t * logs - t * x, logs - x + 1, g * x, g * logs]
    return _leaves_range(case, quantities)


def _poisson_full_zero_target(case: Case) -> bool:
    """full with a target 0: torch's masked Stirling term has slope log 0 + 1/0 there, and
    masked_fill's zero upstream times it is nan."""
    _, y = _arrays(case)
    return bool(case.options.get("full", False) and np.any(y == 0))


@np.errstate(**_QUIET)
def _poisson_intermediate_overflows(case: Case) -> bool:
    x, y = _arrays(case)
    eps = float(case.options.get("eps", 1e-8))
    g = _upstream_over_n(case, x.shape)
    if case.options.get("log_input", True):
        e = np.exp(x)
        quantities = [e, y * x, e - y * x, g * e, g * (e - y)]
    else:
        # torch rounds eps to the dtype and x + eps too: where that changes the sign of
        # x + eps (or makes it 0), log(x + eps) jumps between finite, -inf and nan
        z = round_to(x + round_to(eps, case.dtype), case.dtype)
        if np.any(np.sign(z) != np.sign(x + eps)):
            return True
        safe = np.where(z > 0, z, 1.0)
        quantities = [y * np.log(safe), y / safe, g * y / safe]
    if case.options.get("full", False):
        on = y > 1
        quantities += [(y * np.log(np.where(on, y, 1.0)))[on], (2 * np.pi * y)[on]]
    return _leaves_range(case, quantities)


@np.errstate(**_QUIET)
def _poisson_backward_underflows(case: Case) -> bool:
    """log_input=False: whether the backward's product of the upstream gradient (over the
    mean's count) and the target, g y, falls below the dtype's smallest normal (y not 0) where
    x + eps (rounded as torch forms it) is below 1: torch divides that product, its bits lost
    (or flushed to 0), by x + eps, which magnifies the loss beyond the input gradient's ulps."""
    if case.options.get("log_input", True):
        return False
    x, y = _arrays(case)
    g = _upstream_over_n(case, x.shape)
    eps = float(case.options.get("eps", 1e-8))
    z = round_to(x + round_to(eps, case.dtype), case.dtype)
    tiny = 2.0 ** FORMATS[case.dtype].min_exponent
    lossy = (y != 0) & (g != 0) & (np.abs(g * y) < tiny) & (np.abs(z) < 1) & np.isfinite(x)
    return bool(np.any(lossy))


@np.errstate(**_QUIET)
def _gaussian_intermediate_leaves_range(case: Case) -> bool:
    """(x - y), its square, the square over v, and the backward's v^2 (which may also flush
    to zero), g r^2 / v^2 and (r^2 / v) / v (autograd's derivative of a quotient by v divides
    the quotient by v again), rounded to the dtype."""
    x, y = _arrays(case)
    eps = round_to(float(case.options.get("eps", 1e-6)), case.dtype)
    v, _ = clamped_var(np.asarray(case.args["var"], np.float64), x.shape, float(eps))
    r = x - y
    g = _upstream_over_n(case, x.shape)
    vv = round_to(v * v, case.dtype)
    fmt = FORMATS[case.dtype]
    flushed = bool(np.any((vv < 2.0 ** fmt.min_exponent) & (v > 0) & (r != 0)))
    quantities = [r, r * r, r * r / v, g * r * r / np.where(vv > 0, vv, np.inf), g * r / v,
                  g / v, r * r / v / v]
    return flushed or _leaves_range(case, quantities)


# The type torch 2.13 CPU's mean adds the terms in before dividing: float32 for float16 (whose
# terms cannot reach float32's range), bfloat16 and float32; float64 for float64.
_ACCUMULATOR_MAX = {"float16": FORMATS["float32"].max_finite,
                    "bfloat16": FORMATS["float32"].max_finite,
                    "float32": FORMATS["float32"].max_finite,
                    "float64": FORMATS["float64"].max_finite}


@np.errstate(**_QUIET)
def _terms(name: str, case: Case) -> np.ndarray:
    """The elementwise terms of the loss in float64 (finite inputs; nan elsewhere)."""
    x, y = _arrays(case)
    if name == "kl_div":
        if case.options.get("log_target", False):
            return np.exp(y) * (y - x)
        return np.where(y == 0, 0.0, y * (np.log(np.where(y > 0, y, np.nan)) - x))
    if name == "poisson_nll_loss":
        if case.options.get("log_input", True):
            terms = np.exp(x) - y * x
        else:
            terms = x - y * np.log(x + float(case.options.get("eps", 1e-8)))
        if case.options.get("full", False):
            on = y > 1
            safe = np.where(on, y, 1.0)
            terms = terms + np.where(on, safe * np.log(safe) - safe
                                     + np.log(2 * np.pi * safe) / 2, 0.0)
        return terms
    eps = float(case.options.get("eps", 1e-6))
    v, _ = clamped_var(np.asarray(case.args["var"], np.float64), x.shape, eps)
    return (np.log(v) + (x - y) ** 2 / v) / 2


def _mean_sum_overflows(name: str):
    """'mean' (or 'batchmean'): whether the terms' magnitudes add up beyond the range of the
    type torch adds them in (``_ACCUMULATOR_MAX``) before dividing, so that a partial sum may
    overflow to inf although the exact mean is finite. (The sum of magnitudes bounds every
    partial sum, whatever the order of torch's cascade: below it, no partial sum overflows.)
    'batchmean' also rounds the sum to the dtype before dividing by the batch size: whether
    that sum leaves the dtype's range."""
    @np.errstate(**_QUIET)
    def applies(case: Case) -> bool:
        reduction = case.options.get("reduction")
        if reduction not in ("mean", "batchmean"):
            return False
        terms = _terms(name, case)
        terms = terms[np.isfinite(terms)]
        if (reduction == "batchmean"
                and abs(np.sum(terms)) >= FORMATS[case.dtype].overflow_threshold):
            return True
        return bool(np.sum(np.abs(terms)) > _ACCUMULATOR_MAX[case.dtype])

    return applies


_MEAN_REASON = (
    "torch 2.13 CPU's 'mean' adds the elementwise terms in the dtype (float32 for float16 and "
    "bfloat16) before dividing by their count, so where that sum overflows it returns inf "
    "although the exact mean is finite; {example}")


def _overflow_reason(loss, formula, example):
    return (f"torch 2.13 CPU computes {loss} as {formula} with each operation rounded to the "
            "input dtype (and its backward likewise), so where an intermediate overflows it "
            f"returns inf or nan although the exact result is finite; {example}")


VERIFIED_ON = ("2.13.0",)  # torch releases these deviations were verified on

DEVIATIONS = (
    KnownDeviation(
        impl="torch", loss="kl_div", applies=kl_zero_target_nan,
        reason="torch 2.13 CPU computes kl_div as xlogy(t, t) - t x (or exp(t) (t - x) with "
               "log_target), so a zero target probability times an infinite factor is nan "
               "instead of the KL convention's 0 (0 log(0 / q) = 0): F.kl_div(tensor([-inf]), "
               "tensor([0.]), reduction='sum') is nan, exact 0; with log_target, target -inf "
               "gives nan for the loss and the target gradient, exact 0 (B39)"),
    KnownDeviation(
        impl="torch", loss="kl_div", applies=_kl_intermediate_overflows,
        reason=_overflow_reason(
            "kl_div", "xlogy(t, t) - t x", "e.g. float16 x = [-1e4, 0], t = [10, 0], 'mean' "
            "gives inf (t x = -1e5), exact 50011.5")),
    KnownDeviation(
        impl="torch", loss="poisson_nll_loss", applies=_poisson_full_zero_target,
        reason="torch 2.13 CPU adds the Stirling term with masked_fill(target <= 1, 0), whose "
               "backward sends 0 into y log y + log(2 pi y) / 2 at y = 0, where the slope is "
               "log 0 + 1/0: 0 * nan is nan. F.poisson_nll_loss(x=[0.], y=[0.], full=True) "
               "gives target gradient nan, exact -x = 0 (the term is masked, constant there)"),
    KnownDeviation(
        impl="torch", loss="poisson_nll_loss", applies=_poisson_intermediate_overflows,
        reason=_overflow_reason(
            "poisson_nll_loss", "exp(x) - y x, x - y log(x + eps) and y log y - y + "
            "log(2 pi y) / 2", "and it forms x + eps in the dtype, where eps may vanish: "
            "float16 x = 0, y = 1, log_input=False gives inf (eps = 1e-8 is 0 in float16), "
            "exact 18.42; float32 x = -1e-8 (-9.99999994e-9), y = 1 gives inf, exact 37.34 "
            "(x + eps = 6.1e-17; y = 0 gives nan, exact x); "
            "float16 x = 12, y = 1e4 gives nan (exp(x) and y x overflow), exact 42754.8; "
            "float16 x = 5, y = 12000, full=True gives inf (y log y), exact 40834")),
    KnownDeviation(
        impl="torch", loss="poisson_nll_loss", applies=_poisson_backward_underflows,
        checks=("gradient",),
        reason="torch 2.13 CPU's backward of x - y log(x + eps) (log_input=False) forms g y "
               "before dividing it by x + eps, so where that product falls below the smallest "
               "normal number it loses its bits (or flushes to 0) and the quotient magnifies "
               "the loss: float64 x = 4.92110754e-6, y = 2**-52, eps = 1e-12, 'none' with "
               "upstream gradient -2.225073858507203e-309 gives d/dx -2.225073858507203e-309 "
               "(g y flushed: g itself), exact -2.225073858406804e-309 (2e4 ulps of this "
               "subnormal); float32 x = 4.9e-6, y = 2**-23, g = -1.1e-38 gives -1.07140e-38, "
               "exact -1.07324e-38 (soak, quick profile, seed 403)"),
    KnownDeviation(
        impl="torch", loss="gaussian_nll_loss", applies=_gaussian_intermediate_leaves_range,
        reason=_overflow_reason(
            "gaussian_nll_loss", "(log v + (x - y)^2 / v) / 2", "its backward divides by v * v, "
            "which flushes to 0 in float16 below v = 2.4e-4 (and in float32 below 1e-19). "
            "e.g. float16 x = 300, y = 0, var = 4 gives inf ((x - y)^2 = 9e4), exact 11250.7; "
            "float16 x = 0, y = 4, var = 2**-6, 'sum' gives the var gradient -inf ((x - y)^2 / "
            "var / var = 65536), exact -32736")),
    KnownDeviation(
        impl="torch", loss="kl_div", applies=_mean_sum_overflows("kl_div"), checks=("value",),
        reason=_MEAN_REASON.format(
            example="F.kl_div(torch.full((2, 9), -3e37), torch.ones(2, 9), "
                    "reduction='batchmean') is inf, exact 2.7e38; and 'batchmean' rounds the "
                    "sum to the dtype before dividing by the batch size: float16 x = "
                    "full((14,), -5000), t = zeros(14), log_target=True gives inf, exact 5000 "
                    "(quick profile, seed 11)")),
    KnownDeviation(
        impl="torch", loss="poisson_nll_loss", applies=_mean_sum_overflows("poisson_nll_loss"),
        checks=("value",),
        reason=_MEAN_REASON.format(
            example="F.poisson_nll_loss(torch.full((18,), 85.9), torch.zeros(18)) is inf, exact "
                    "exp(85.9) = 2.02e37 (bfloat16 likewise; float64 x = 708: inf, exact "
                    "3.0e307)")),
    KnownDeviation(
        impl="torch", loss="gaussian_nll_loss", applies=_mean_sum_overflows("gaussian_nll_loss"),
        checks=("value",),
        reason=_MEAN_REASON.format(
            example="F.gaussian_nll_loss(torch.full((18,), 7e18), torch.zeros(18), "
                    "torch.ones(18)) is inf, exact 2.45e37")),
)
