"""The probabilistic references (loss_reference/probabilistic.py), proved against mpmath.

The oracle writes each loss from its definition in mpmath (at 60 digits and again with 40 more,
both of which must round alike), with the special values of the contract (a zero target
probability contributes 0, x = -inf against a positive target +inf, log of 0 and of negative
numbers per IEEE). Each expectation is rounded to the format by test_reference's
``round_value`` and must equal the certified reference, on every regime, reduction and format;
the reference's long double estimate must be far closer than any format's spacing.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from mpmath import mp, mpf
from test_reference import exact_twice, is_nan, ld_to_fraction, round_value, to_format, \
    to_fraction

from loss_reference import probabilistic as pr
from loss_reference.engine import ESTIMATE_ULPS
from loss_reference.formats import FORMATS
from conformance.specs import REDUCTIONS

INF = math.inf
FORMAT_NAMES = tuple(FORMATS)
G_VECTOR = [0.75, -2.5, 1.25, -0.375, 2.0, 0.5, -1.0, 3.0]
G_SCALAR = -2.5
NAN = mpf("nan")


def assert_matches(evaluated, values, shape, fmt):
    """The reference rounds as the oracle does; its estimate is within 2**-50 relative, or
    (certified by a ball just narrow enough) within ESTIMATE_ULPS of the format's spacing, as
    engine.certify promises."""
    expected = np.array([round_value(v, fmt)[0] for v in values], dtype=np.float64)
    np.testing.assert_array_equal(evaluated.rounded, expected.reshape(shape), strict=True)
    for est, true in zip(np.asarray(evaluated.exact).reshape(-1), values):
        if is_nan(true) or mp.isinf(true):
            assert np.isnan(est) if is_nan(true) else est == float(true)
            continue
        if np.isinf(est):  # decided exactly: beyond every format, float64 included
            assert round_value(true, FORMATS["float64"])[0] == est
            continue
        q = to_fraction(true)
        spacing = Fraction(float(fmt.ulp(np.array(float(min(abs(q), fmt.max_finite))))))
        assert abs(ld_to_fraction(est) - q) <= max(abs(q) / 2 ** 50,
                                                   spacing * Fraction(ESTIMATE_ULPS)) + \
            Fraction(1, 2 ** 1073), est


# --- the oracle ----------------------------------------------------------------------------------

def _mp(v):
    return mpf(float(v))


def kl_term(x, t, log_target):
    """(term, d/dx, d/dt) in mpmath, with the contract's special values."""
    x, t = _mp(x), _mp(t)
    if log_target:
        if t == -INF:
            return mpf(0), mpf(0), mpf(0)
        e = mp.exp(t)
        if x == -INF:
            return mpf(INF), -e, mpf(INF)
        return e * (t - x), -e, e * (t - x + 1)
    if t == 0:
        return mpf(0), mpf(0), NAN
    if x == -INF:
        return mpf(INF), -t, mpf(INF)
    return t * (mp.log(t) - x), -t, mp.log(t) + 1 - x


def poisson_term(x, y, log_input, full, eps):
    """(term, d/dx, d/dy); log of 0 is -inf and of a negative number nan, as in IEEE."""
    x, y, eps = _mp(x), _mp(y), mpf(eps)
    if log_input:
        e = mp.exp(x)
        term, d_x, d_y = e - y * x, e - y, -x
    else:
        z = x + eps
        if z < 0:
            term, d_x, d_y = NAN, 1 - y / z, NAN
        elif z == 0:
            term = mpf(INF) if y > 0 else NAN
            d_x = mpf(-INF) if y > 0 else NAN
            d_y = mpf(INF)
        else:
            term, d_x, d_y = x - y * mp.log(z), 1 - y / z, -mp.log(z)
    if full and y > 1:
        term = term + y * mp.log(y) - y + mp.log(2 * mp.pi * y) / 2
        d_y = d_y + mp.log(y) + 1 / (2 * y)
    return term, d_x, d_y


def gaussian_term(x, y, v, full, eps):
    """(term, d/dx, d/dv') at v' = max(v, eps)."""
    x, y, v = _mp(x), _mp(y), max(_mp(v), mpf(eps))
    r = x - y
    term = (mp.log(v) + r * r / v) / 2 + (mp.log(2 * mp.pi) / 2 if full else 0)
    return term, r / v, (1 / v - r * r / (v * v)) / 2


def _reduce(terms, reduction, shape):
    if reduction == "none":
        return terms, shape
    count = pr.divisor(reduction, shape)
    total = mp.fsum(terms) if terms else mpf(0)
    if reduction == "sum":
        return [total], ()
    return [total / count if count else NAN], ()


def _nan_aware_mul(a, b):
    return NAN if is_nan(a) or is_nan(b) else a * b


def _grads(triples, g, reduction, shape, names):
    count = pr.divisor(reduction, shape)
    gs = np.broadcast_to(g, shape).reshape(-1)
    out = {}
    for k, name in enumerate(names):
        if count == 0:
            out[name] = ([NAN] * len(triples), shape)
            continue
        out[name] = ([_nan_aware_mul(_mp(gi), d[k + 1]) / count for gi, d in zip(gs, triples)],
                     shape)
    return out


# --- regimes -------------------------------------------------------------------------------------

def kl_regime(name):
    """(x, t, log_target)."""
    return {
        "normal": ([[-1.25, -0.5, -3.0], [-0.125, -2.0, -0.75]],
                   [[0.25, 0.5, 0.25], [0.125, 0.375, 0.5]], False),
        "zero-targets": ([-1.25, -0.5, -3.0, -0.125], [0.0, 0.5, 0.0, 1.0], False),
        "neg-inf-input": ([-INF, -INF, -1.0], [0.0, 0.5, 0.25], False),
        "neg-inf-input-zero": ([-INF, -2.0], [0.0, 0.25], False),
        "log-target": ([-1.25, -0.5, 0.0, 2.0], [-0.5, -3.0, -0.125, 1.5], True),
        "neg-inf-log-target": ([-1.0, -INF, -2.0], [-INF, -INF, -0.5], True),
        "neg-inf-input-log-target": ([-INF, -1.0], [-0.5, -INF], True),
        "large": ([-1e4, -88.7, -1e30, 3.0], [0.25, 7.5, 1e-3, 50.0], False),
        "tiny-targets": ([-1.0, -2.0, 0.5], [1e-30, 3e-8, 1e-4], False),
        "empty": (np.zeros((0, 3)), np.zeros((0, 3)), False),
        "scalar": (-1.25, 0.375, False),
    }[name]


KL_REGIMES = ("normal", "zero-targets", "neg-inf-input", "neg-inf-input-zero", "log-target",
              "neg-inf-log-target", "neg-inf-input-log-target", "large", "tiny-targets",
              "empty", "scalar")


def _rounded(values, fmt):
    """to_format, keeping infinities (which to_format clamps)."""
    values = np.asarray(values, np.float64)
    finite = to_format(np.clip(np.where(np.isinf(values), 0.0, values), -fmt.max_finite,
                               fmt.max_finite), fmt)
    return np.where(np.isinf(values), values, finite)


def _upstream(shape, reduction, fmt):
    if reduction != "none":
        return to_format(G_SCALAR, fmt)
    return to_format(np.resize(G_VECTOR, shape) if shape else G_VECTOR[0], fmt)


def _grid(regimes, reductions):
    return [pytest.param(r, red, f, id=f"{r}-{red}-{f}")
            for r, red, f in itertools.product(regimes, reductions, FORMAT_NAMES)]


@pytest.mark.parametrize("regime, reduction, fmt_name",
                         _grid(KL_REGIMES, ("none", "sum", "mean", "batchmean")))
def test_kl_div(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, t, log_target = kl_regime(regime)
    x, t = _rounded(x, fmt), _rounded(t, fmt)
    shape = x.shape

    def compute(guard):
        with mp.workdps(60 + guard):
            triples = [kl_term(a, b, log_target) for a, b in zip(x.reshape(-1), t.reshape(-1))]
            return _reduce([v[0] for v in triples], reduction, shape)

    values, out_shape = exact_twice(compute, fmt)
    assert_matches(pr.kl_div(x, t, reduction, log_target, fmt), values, out_shape, fmt)

    def compute_grad(guard):
        with mp.workdps(60 + guard):
            triples = [kl_term(a, b, log_target) for a, b in zip(x.reshape(-1), t.reshape(-1))]
            return _grads(triples, _upstream(shape, reduction, fmt), reduction, shape,
                          ("input", "target"))

    expected = exact_twice(compute_grad, fmt)
    grads = pr.kl_div_grad(_upstream(shape, reduction, fmt), x, t, reduction, log_target, fmt)
    for name, (values, shape_) in expected.items():
        assert_matches(grads[name], values, shape_, fmt)


def poisson_regime(name):
    """(x, y, options)."""
    return {
        "log-input": ([[0.5, -1.0, 2.0], [3.0, 0.0, -7.5]], [[0.0, 1.0, 3.0], [2.0, 5.0, 0.5]],
                      {}),
        "exp-overflow": ([11.0, 12.0, 88.0, 89.0, 709.0, 710.0, 900.0, 1e4], [2.0] * 8, {}),
        "large-negative": ([-1e4, -1e30, -20.0], [3.0, 1.0, 0.0], {}),
        "rates": ([0.0, 1e-3, 2.5, 20.0, 1e-10], [1.0, 0.0, 3.0, 7.0, 2.0],
                  {"log_input": False}),
        "negative-rates": ([-1.0, -1e-8, -5e-9, 2.0], [1.0, 1.0, 1.0, 0.0],
                           {"log_input": False}),
        "stirling": ([0.75] * 6, [0.0, 0.5, 1.0, 1.0078125, 2.0, 50.0], {"full": True}),
        "stirling-rates": ([2.5] * 6, [0.0, 0.5, 1.0, 1.0078125, 2.0, 50.0],
                           {"full": True, "log_input": False}),
        "eps": ([0.0, 0.25, 1.0], [2.0, 1.0, 3.0], {"log_input": False, "eps": 0.5}),
        "large-counts": ([3.0, 7.0, 9.0], [100.0, 1000.0, 8000.0], {"full": True}),
        "empty": (np.zeros((2, 0)), np.zeros((2, 0)), {}),
        "scalar": (0.5, 3.0, {"full": True}),
    }[name]


POISSON_REGIMES = ("log-input", "exp-overflow", "large-negative", "rates", "negative-rates",
                   "stirling", "stirling-rates", "eps", "large-counts", "empty", "scalar")


@pytest.mark.parametrize("regime, reduction, fmt_name",
                         _grid(POISSON_REGIMES, REDUCTIONS))
def test_poisson_nll_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, y, options = poisson_regime(regime)
    x, y = _rounded(x, fmt), _rounded(y, fmt)
    log_input, full = options.get("log_input", True), options.get("full", False)
    eps = options.get("eps", 1e-8)
    shape = x.shape

    def triples():
        return [poisson_term(a, b, log_input, full, eps)
                for a, b in zip(x.reshape(-1), y.reshape(-1))]

    def compute(guard):
        with mp.workdps(60 + guard):
            return _reduce([v[0] for v in triples()], reduction, shape)

    values, out_shape = exact_twice(compute, fmt)
    assert_matches(pr.poisson_nll_loss(x, y, log_input, full, eps, reduction, fmt), values,
                   out_shape, fmt)
    g = _upstream(shape, reduction, fmt)

    def compute_grad(guard):
        with mp.workdps(60 + guard):
            return _grads(triples(), g, reduction, shape, ("input", "target"))

    expected = exact_twice(compute_grad, fmt)
    grads = pr.poisson_nll_loss_grad(g, x, y, log_input, full, eps, reduction, fmt)
    for name, (values, shape_) in expected.items():
        assert_matches(grads[name], values, shape_, fmt)


@pytest.mark.parametrize("fmt_name", ("float64", "float32"))
@pytest.mark.parametrize("g", [0.0, -0.0, 1e-300, 2.0 ** -1074, -1e-320, 1.0])
def test_poisson_input_slopes_beyond_every_format_times_a_tiny_upstream(g, fmt_name):
    """exp(x) beyond every format (x > 800) times the upstream gradient: exactly 0 for g = 0,
    and finite for a tiny g (1e-300 e^801 is 7.4e47), though exp(x) alone overflows; both
    were decided as g * inf (nan and inf) before."""
    fmt = FORMATS[fmt_name]
    x = np.array([801.0, 3.4e38, 1000.0, 900.0, 1500.0, 2000.0])
    y = np.array([0.0, 0.0, 2.0, 1.0, 0.5, 3.0])
    for reduction in ("none", "mean"):
        count = x.size if reduction == "mean" else 1
        with mp.workdps(60):
            values = [mpf(g) * (mp.exp(mpf(a)) - mpf(b)) / count for a, b in zip(x, y)]
            # beyond 2^2000 every format rounds to inf (round_value takes no such integers)
            values = [v if abs(v) < mpf(2) ** 2000 else mp.sign(v) * mp.inf for v in values]
        grads = pr.poisson_nll_loss_grad(np.array(g), x, y, True, False, 1e-8, reduction, fmt)
        assert_matches(grads["input"], values, x.shape, fmt)


def gaussian_regime(name):
    """(x, y, var, options)."""
    x = [[1.25, -3.5, 4.75, -1.0625], [2.5, 0.8125, -2.0, 3.0]]
    y = [[0.5, -3.0, 1.0, 2.0], [2.5, -1.5, -2.25, -4.0]]
    return {
        "same": (x, y, [[0.5, 1.0, 2.0, 4.0], [0.25, 3.0, 1.5, 0.75]], {}),
        "below-eps": ([1.0, 0.0, 2.0, 1e-3], [0.0] * 4, [0.0, 1e-9, 5e-7, 1e-6], {}),
        "near-eps": ([0.5, 0.5, 0.5], [0.0] * 3, [9e-4, 1e-3, 1.1e-3], {"eps": 1e-3}),
        "column": (x, y, [[0.5], [2.0]], {}),
        "last-dropped": (x, y, [0.5, 2.0], {}),
        "row": (x, y, [[0.5, 1.0, 2.0, 4.0]], {"full": True}),
        "unbatched-0d": ([1.0, -2.0, 0.5], [0.0, 0.0, 0.0], 0.75, {}),
        "large": ([300.0, -3e4, 1e20], [0.0, 0.0, 0.0], [4.0, 1e4, 1.0], {}),
        "empty": (np.zeros((0, 3)), np.zeros((0, 3)), np.ones((0, 1)), {}),
        "scalar": (1.5, -0.5, 2.0, {"full": True}),
    }[name]


GAUSSIAN_REGIMES = ("same", "below-eps", "near-eps", "column", "last-dropped", "row",
                    "unbatched-0d", "large", "empty", "scalar")


@pytest.mark.parametrize("regime, reduction, fmt_name",
                         _grid(GAUSSIAN_REGIMES, REDUCTIONS))
def test_gaussian_nll_loss(regime, reduction, fmt_name):
    fmt = FORMATS[fmt_name]
    x, y, v, options = gaussian_regime(regime)
    x, y, v = _rounded(x, fmt), _rounded(y, fmt), _rounded(v, fmt)
    full, eps = options.get("full", False), options.get("eps", 1e-6)
    shape = x.shape
    vb, axis = pr.clamped_var(v, shape, 0.0)  # the broadcast var; the oracle clamps itself

    def triples():
        return [gaussian_term(a, b, c, full, eps)
                for a, b, c in zip(x.reshape(-1), y.reshape(-1), vb.reshape(-1))]

    def compute(guard):
        with mp.workdps(60 + guard):
            return _reduce([t[0] for t in triples()], reduction, shape)

    values, out_shape = exact_twice(compute, fmt)
    assert_matches(pr.gaussian_nll_loss(x, y, v, full, eps, reduction, fmt), values,
                   out_shape, fmt)
    g = _upstream(shape, reduction, fmt)

    def compute_grad(guard):
        with mp.workdps(60 + guard):
            t = triples()
            grads = _grads(t, g, reduction, shape, ("input", "var"))
            d_input, _ = grads["input"]
            d_var = np.array(grads["var"][0] if grads["var"][0] else [], dtype=object)
            d_var = d_var.reshape(shape)
            if axis is not None:
                d_var = np.array([mp.fsum(row) for row in np.moveaxis(d_var, axis, -1)
                                  .reshape(-1, shape[axis])] if shape[axis] else
                                 [mpf(0)] * int(np.prod(np.shape(v))), dtype=object)
            if pr.divisor(reduction, shape) == 0:
                d_var = np.array([mpf(0)] * int(np.prod(np.shape(v))), dtype=object)
            return {"input": (d_input, shape), "target": ([-d for d in d_input], shape),
                    "var": (list(d_var.reshape(-1)), np.shape(v))}

    expected = exact_twice(compute_grad, fmt)
    grads = pr.gaussian_nll_loss_grad(g, x, y, v, full, eps, reduction, fmt)
    for name, (values, shape_) in expected.items():
        assert_matches(grads[name], values, shape_, fmt)


# --- facts checked by hand -----------------------------------------------------------------------

def test_hand_values():
    f64 = FORMATS["float64"]
    # batchmean divides by input.size(0), mean by numel (B38)
    x, t = np.log([[0.25, 0.75]] * 2), np.array([[0.5, 0.5]] * 2)
    total = pr.kl_div(x, t, "sum", False, f64).rounded
    assert pr.kl_div(x, t, "batchmean", False, f64).rounded == total / 2
    assert pr.kl_div(x, t, "mean", False, f64).rounded == total / 4
    # full adds the Stirling term only where y > 1 (B45)
    one = pr.poisson_nll_loss(np.zeros(2), np.array([1.0, 0.0]), True, True, 1e-8, "none", f64)
    np.testing.assert_array_equal(one.rounded, [1.0, 1.0])
    # eps clamps var (max), not added (B46): var 0 -> log(1e-6) / 2
    v = pr.gaussian_nll_loss(np.zeros(1), np.zeros(1), np.zeros(1), False, 1e-6, "sum", f64)
    assert v.rounded == 0.5 * math.log(1e-6)
    # a zero probability contributes 0 whatever the input
    assert pr.kl_div(np.array([-INF]), np.array([0.0]), "sum", False, f64).rounded == 0.0


def test_var_axis():
    assert pr.var_axis((2, 3), (2, 3)) is None
    assert pr.var_axis((2, 3), (2,)) == 1
    assert pr.var_axis((2, 3, 4), (2, 1, 4)) == 1
    assert pr.var_axis((3,), ()) == 0
    for bad in ((3,), (1, 1), (2, 2)):
        with pytest.raises(ValueError):
            pr.var_axis((2, 3), bad)
