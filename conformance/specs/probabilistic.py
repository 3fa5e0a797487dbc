"""The probabilistic family: kl_div, poisson_nll_loss, gaussian_nll_loss.

Contract (torch 2.13's documentation, with these decisions; torch's behaviour verified):

- Shapes: input and target of the same shape, rank 0 to 3 (empty included); 'none' keeps it,
  the other reductions give a 0-d tensor. The mean of no elements is nan, the sum 0. Targets
  of another broadcastable shape are outside the contract (never drawn, not required to
  raise); shapes that do not broadcast raise, and so does an unknown reduction.
- kl_div(input, target, reduction, log_target): input holds log-probabilities, target
  probabilities (log-probabilities with log_target). term = t (log t - x), or exp(t) (t - x).
  'mean' divides the sum by numel (B38), 'batchmean' by input.size(0) (the sum for a 0-d
  input; nan for a batch of 0 rows). Targets need not sum to 1. A target probability 0 (t = 0,
  or t = -inf with log_target) contributes exactly 0 whatever the input, -inf included (the
  KL convention 0 log(0 / q) = 0; torch 2.13 gives nan there, see deviations); x = -inf
  against a positive target contributes +inf. Gradients for input (-t, -exp(t)) and target
  (log t + 1 - x, or exp(t) (t - x + 1)): t log t has no derivative at t = 0, so the target
  gradient there is nan (as torch gives); with log_target it is 0 at t = -inf. Negative
  probabilities and +inf are outside the domain and not drawn. torch's kl_div also warns
  about 'mean'; torch's legacy size_average/reduce have no spelling for 'batchmean', so its
  legacy-keyword check is skipped.
- poisson_nll_loss(input, target, log_input, full, eps, reduction): exp(x) - y x (log_input),
  else x - y log(x + eps), eps the double given. full adds y log y - y + log(2 pi y) / 2
  exactly where y > 1 (torch 2.13 masks y <= 1: B45's threshold). Rates with x + eps <= 0
  follow IEEE (torch computes them and so do we): log 0 = -inf (loss +inf), the log of a
  negative number nan (loss nan); the input gradient is the chain rule's 1 - y / (x + eps),
  finite for x + eps < 0 (torch gives it), the target gradient -log(x + eps) (+ log y + 1/(2y)
  where y > 1 with full). Targets are counts or nonnegative reals; torch differentiates both.
- gaussian_nll_loss(input, target, var, full, eps, reduction): (log v' + (x - y)^2 / v') / 2
  (+ log(2 pi) / 2 with full), v' = max(var, eps) (a clamp, not an added eps: B46). var: the
  input's shape; the input's shape without its last dim (a 0-d var for a 1-D input); or the
  input's shape with one dim set to 1. Other shapes and negative entries raise. A var
  element broadcast over no elements (an empty input) has gradient 0 (an empty sum). var's
  gradient is that of the loss in v' at v' = max(var, eps), for every var, below eps too:
  torch clamps under no_grad, which passes the gradient through (B46 says 0; torch 2.13
  does not). A Python float var is accepted by torch but not drawn: the suite's adapters
  differentiate every differentiable argument present, and a float has no gradient.
- Options are drawn per case: log_target; log_input, full, eps in {1e-8, 1e-4, 0.5, 1e-12};
  full, eps in {1e-6, 1e-4, 1e-3, 0.25}. torch rounds eps to the input dtype (float16: 1e-8
  is 0) while the reference uses the double: the tolerance below covers that rounding.

Tolerances (conformance/accuracy.py; S per element, n = numel for 'sum' and the means,
cascade summation as torch.sum):

- terms: kl |t log t| + |t x| (log_target exp(t) (|t| + |x|)); poisson exp(x) + |y x| or |x| +
  |y log z| + |y| (|x| + eps) / z with z = x + eps (rounding z, and eps, relative u, is
  magnified by y / z), plus |y log y| + y + |log(2 pi y)| / 2 with full; gaussian (|log v'| +
  r^2 / v' + [log(2 pi)]) / 2. 'mean'/'batchmean' divide S by the divisor.
- gradients: |g| / divisor times kl t (exp(t)) for input, |log t| + 1 + |x| (exp(t) (|t| +
  |x| + 1)) for target; poisson exp(x) + y or 1 + y / z + y (|x| + eps) / z^2 for input, |x|
  or |log z| + (|x| + eps) / z, plus |log y| + 1 / (2y), for target; gaussian |r| / v' for
  input and target, (1 / v' + r^2 / v'^2) / 2 for var (summed over var's broadcast axis,
  whose length is then the term count).
- depth: kl 6 (log, 2 products, subtraction, reduction divide, upstream), poisson 7 (exp or
  add + log, product, subtraction, Stirling addition, divide, upstream), gaussian 7
  (subtraction, square, division, log, addition, half, divide).
- underflow: a term below the smallest normal errs by up to a subnormal unit, and the factors
  that multiply such an intermediate later magnify it: kl 1 + |t| + |x| (and 1 / t for the
  target gradient, which torch forms as (g t) / t), poisson 1 + y / z
  (z, or eps, subnormal: float16 cannot hold eps = 1e-8), gaussian (1 / v' + r^2 / v'^2) / 2
  (v' = max(var, eps) subnormal), for the input's gradient also 2 r (torch divides the
  upstream by v' first, subnormal for a large v', then multiplies by 2 r), for var's gradient
  also (1 / v'^2 + r^2 / v'^4) (torch forms v'^2), times max(1, |g| / divisor); in a
  gradient the slope also magnifies an underflow of the upstream product g / divisor (torch
  forms g / 2 first); a sum carries one such error per element.
"""

from __future__ import annotations

import math

import numpy as np

from loss_reference import probabilistic as ref
from loss_reference.formats import format_of

from ..accuracy import Magnitude
from ..cases import Case
from . import REDUCTIONS, InvalidCall, Spec, reduction_variants
from .probabilistic_cases import case_strategy, edge_strategy
from .speed import (in_dtype, ladder, log_softmax, normal_values, typical_case, uniform_values,
                    variant)

LOSS_REDUCTIONS = {"kl_div": REDUCTIONS + ("batchmean",), "poisson_nll_loss": REDUCTIONS,
                   "gaussian_nll_loss": REDUCTIONS}
DEPTH = {"kl_div": 6, "poisson_nll_loss": 7, "gaussian_nll_loss": 7}
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
DEFAULTS = {"kl_div": {"log_target": False},
            "poisson_nll_loss": {"log_input": True, "full": False, "eps": 1e-8},
            "gaussian_nll_loss": {"full": False, "eps": 1e-6}}
_QUIET = {"over": "ignore", "invalid": "ignore", "divide": "ignore", "under": "ignore"}


def _variants(name):
    return reduction_variants(LOSS_REDUCTIONS[name])


# --- invalid calls -------------------------------------------------------------------------------

def _invalid(name):
    def invalid_calls():
        """Calls torch 2.13 rejects (each verified), that a conforming candidate must reject."""
        x = np.zeros((2, 4))
        base = {"input": x, "target": x}
        if name == "gaussian_nll_loss":
            base["var"] = np.ones((2, 4))
        calls = [("target-shape", "target (2, 5) does not broadcast with input (2, 4)",
                  {**base, "target": np.zeros((2, 5))}, {}),
                 ("unknown-reduction", "reduction 'avg' is not a valid value",
                  base, {"reduction": "avg"})]
        if name == "kl_div":
            calls.append(("integer-input", "kl_div: integral inputs not supported",
                          {"input": x.astype(np.int64), "target": x.astype(np.int64)}, {}))
        if name == "gaussian_nll_loss":
            calls += [
                ("var-negative", "var has a negative entry",
                 {**base, "var": np.array([[1.0, -1.0, 1.0, 1.0]] * 2)}, {}),
                ("var-shape", "var (4,) is neither input's shape, nor input's without its last "
                 "dim, nor input's with one dim set to 1", {**base, "var": np.ones(4)}, {}),
                ("var-two-axes", "var (1, 1) differs from input (2, 4) in two dims",
                 {**base, "var": np.ones((1, 1))}, {}),
                ("var-wrong-size", "var (2, 2) differs from input (2, 4) by a dim that is not 1",
                 {**base, "var": np.ones((2, 2))}, {}),
                ("var-0d-for-matrix", "a 0-d var fits only a 1-D input",
                 {**base, "var": np.array(1.0)}, {}),
            ]
        return [InvalidCall(call_id, reason, Case("float32", args,
                                                  {"reduction": "mean", **options}))
                for call_id, reason, args, options in calls]

    return invalid_calls


# --- references ----------------------------------------------------------------------------------

def _opt(case, name, key):
    return case.options.get(key, DEFAULTS[name][key])


def _arrays(case):
    a = case.args
    return (np.asarray(a["input"], np.float64), np.asarray(a["target"], np.float64),
            None if a.get("var") is None else np.asarray(a["var"], np.float64))


def _reference(name):
    def reference(case):
        x, y, v = _arrays(case)
        fmt, red = format_of(case.dtype), case.options["reduction"]
        if name == "kl_div":
            return ref.kl_div(x, y, red, _opt(case, name, "log_target"), fmt)
        if name == "poisson_nll_loss":
            return ref.poisson_nll_loss(x, y, _opt(case, name, "log_input"),
                                        _opt(case, name, "full"), _opt(case, name, "eps"),
                                        red, fmt)
        return ref.gaussian_nll_loss(x, y, v, _opt(case, name, "full"),
                                     _opt(case, name, "eps"), red, fmt)

    return reference


def _reference_grad(name):
    def reference_grad(case):
        x, y, v = _arrays(case)
        fmt, red, g = format_of(case.dtype), case.options["reduction"], case.grad_output
        if name == "kl_div":
            return ref.kl_div_grad(g, x, y, red, _opt(case, name, "log_target"), fmt)
        if name == "poisson_nll_loss":
            return ref.poisson_nll_loss_grad(g, x, y, _opt(case, name, "log_input"),
                                             _opt(case, name, "full"), _opt(case, name, "eps"),
                                             red, fmt)
        return ref.gaussian_nll_loss_grad(g, x, y, v, _opt(case, name, "full"),
                                          _opt(case, name, "eps"), red, fmt)

    return reference_grad


# --- magnitudes ----------------------------------------------------------------------------------

@np.errstate(**_QUIET)
def _sizes(name, case):
    """Per element: {output or argument: (S, amplification)} before upstream and divisor."""
    x, y, v = _arrays(case)
    finite = lambda a: np.where(np.isfinite(a), a, 0.0)  # noqa: E731 (specials judged exactly)
    if name == "kl_div":
        xs, t = np.abs(finite(x)), finite(y)
        if _opt(case, name, "log_target"):
            e = np.exp(t)
            amp = 1 + np.abs(t) + xs
            return {"output": (e * (np.abs(t) + xs), amp), "input": (e, amp),
                    "target": (e * (np.abs(t) + xs + 1), amp)}
        lt = np.abs(np.log(np.where(t > 0, t, 1.0)))
        amp = 1 + np.abs(t) + xs
        # torch's backward forms (g t) / t: an underflow of g t is magnified by 1 / t.
        return {"output": (t * lt + np.abs(t * xs), amp), "input": (np.abs(t), amp),
                "target": (lt + 1 + xs, amp, 1 / np.where(t > 0, t, np.inf))}
    if name == "poisson_nll_loss":
        full, eps = _opt(case, name, "full"), _opt(case, name, "eps")
        on = full & (y > 1)
        yl = np.where(on, y, 2.0)
        st_term = np.where(on, np.abs(yl * np.log(yl)) + yl + np.abs(np.log(2 * np.pi * yl)) / 2, 0)
        st_slope = np.where(on, np.abs(np.log(yl)) + 0.5 / yl, 0)
        ay = np.abs(y)
        if _opt(case, name, "log_input"):
            e = np.exp(np.minimum(x, ref.EXP_HUGE))
            amp = 1 + ay + np.abs(x)
            return {"output": (e + np.abs(y * x) + st_term, amp), "input": (e + ay, amp),
                    "target": (np.abs(x) + st_slope, amp)}
        z = np.abs(x + eps)
        z = np.where(z > 0, z, np.inf)  # a pole: judged exactly
        spread = (np.abs(x) + eps) / z
        lz = np.abs(np.log(z))
        return {"output": (np.abs(x) + ay * lz + ay * spread + st_term, 1 + ay / z),
                "input": (1 + ay / z * (1 + spread), 1 + ay / z / z),
                "target": (lz + spread + st_slope, 1 + 1 / z)}
    eps, full = _opt(case, name, "eps"), _opt(case, name, "full")
    vb, _ = ref.clamped_var(v, x.shape, eps)
    r = np.abs(x - y)
    q = r * r / vb
    amp = 0.5 * (1 / vb + q / vb)
    return {"output": (0.5 * (np.abs(np.log(vb)) + q) + (HALF_LOG_2PI if full else 0), amp),
            # torch forms upstream / v' (it can underflow) before multiplying by 2 r
            "input": (r / vb, 1 + 1 / vb + r / vb / vb + 2 * r),
            "var": (amp, 1 / vb / vb + q / vb / vb / vb)}


def _magnitude(name):
    def magnitude(case):
        reduction = case.options["reduction"]
        s, amp = _sizes(name, case)["output"]
        depth = DEPTH[name]
        if reduction == "none":
            return Magnitude(s, 1, depth, amplification=amp)
        n = s.size
        count = max(ref.divisor(reduction, s.shape), 1)
        return Magnitude(np.array(s.sum() / count), max(n, 1), depth,
                         amplification=amp.sum() / count)

    return magnitude


def _grad_magnitudes(name):
    def grad_magnitudes(case):
        reduction = case.options["reduction"]
        sizes = _sizes(name, case)
        shape = np.shape(case.args["input"])
        g = np.abs(np.broadcast_to(np.asarray(case.grad_output, np.float64), shape))
        scale = g / max(ref.divisor(reduction, shape), 1)
        depth = DEPTH[name]
        out = {}
        for arg in ("input", "target", "var"):
            key = "input" if (name == "gaussian_nll_loss" and arg == "target") else arg
            if key not in sizes:
                continue
            s, amp, *unscaled = sizes[key]
            # an underflow in g / divisor (or g times a first factor) is carried by the slope
            with np.errstate(invalid="ignore", over="ignore"):  # inf * 0: judged exactly
                s, amp = s * scale, (np.maximum(1, scale) * np.maximum(1, s + amp)
                                     + sum(unscaled))
            terms = 1
            if arg == "var":
                axis = ref.var_axis(shape, np.shape(case.args["var"]))
                if axis is not None:
                    terms = shape[axis]
                    s, amp = s.sum(axis=axis), amp.sum(axis=axis)
                s, amp = s.reshape(np.shape(case.args["var"])), amp.reshape(
                    np.shape(case.args["var"]))
            out[arg] = Magnitude(s, max(terms, 1), depth, amplification=amp)
        return out

    return grad_magnitudes


# --- speed ladder --------------------------------------------------------------------------------

def _speed_case(name):
    def case(size, dtype, rng):
        """Typical inputs, 'mean' ('batchmean' for kl_div): kl_div, log-probabilities and
        probabilities of two softmaxes of N(0,1) logits; poisson_nll_loss, log-rates N(0,1) and
        counts drawn from them; gaussian_nll_loss, means and targets N(0,1), variances 0.5-2."""
        if name == "kl_div":
            with np.errstate(under="ignore"):
                args = {"input": in_dtype(log_softmax(normal_values(size, dtype, rng)), dtype),
                        "target": in_dtype(np.exp(log_softmax(normal_values(size, dtype, rng))),
                                           dtype)}
            return typical_case(dtype, args, {"reduction": "batchmean"})
        x = normal_values(size, dtype, rng)
        if name == "poisson_nll_loss":
            return typical_case(dtype, {"input": x, "target": rng.poisson(np.exp(x)).astype(
                np.float64)}, {"reduction": "mean"})
        return typical_case(dtype, {"input": x, "target": normal_values(size, dtype, rng),
                                    "var": uniform_values(size, dtype, rng, 0.5, 2.0)},
                            {"reduction": "mean"})
    return case


def _log_target(case, rng):
    with np.errstate(divide="ignore"):
        return in_dtype(np.log(case.args["target"]), case.dtype)


SPEED_VARIANTS = {
    "kl_div": (("log_target", variant(arrays={"target": _log_target}, log_target=True)),),
    "poisson_nll_loss": (("full", variant(full=True)),),
    "gaussian_nll_loss": (("full", variant(full=True)),),
}
SPEED_KERNELS = {"kl_div": "log", "poisson_nll_loss": "exp", "gaussian_nll_loss": "gaussian"}
SPEED_INPUTS = {"kl_div": "log-probabilities and probabilities of N(0,1) logits, 'batchmean'",
                "poisson_nll_loss": "log-rates N(0,1), Poisson counts, 'mean'",
                "gaussian_nll_loss": "means and targets N(0,1), variances 0.5-2 per element, "
                                     "'mean'"}


def _speed(name, arrays):
    return ladder(_speed_case(name), read=arrays, kernel=SPEED_KERNELS[name],
                  differentiated=("input", "var") if "var" in arrays else ("input",),
                  variants=SPEED_VARIANTS[name] + (("none", variant(reduction="none")),),
                  inputs=SPEED_INPUTS[name])


def _spec(name):
    arrays = ("input", "target", "var") if name == "gaussian_nll_loss" else ("input", "target")
    return Spec(
        name=name, family="probabilistic", positional=arrays, keyword_arrays=(),
        variants=_variants(name), cases=case_strategy(name), edge_cases=edge_strategy(name),
        invalid_calls=_invalid(name), reference=_reference(name), magnitude=_magnitude(name),
        differentiable=arrays, reference_grad=_reference_grad(name),
        grad_magnitudes=_grad_magnitudes(name), speed=_speed(name, arrays),
    )


SPECS = tuple(_spec(name) for name in ref.LOSSES)
