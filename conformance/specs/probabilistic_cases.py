"""Case strategies and edge cases of the probabilistic family (see probabilistic.py's contract).

Options that do not get a test id of their own (log_target; log_input, full, eps; full, eps and
the shape of var) are drawn inside each case and named in its tags.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from ..cases import Case, make_expandable, round_to, layouts_for, upstream_gradient
from .pointwise_cases import arrays, pointwise_shape

INF = math.inf
UPSTREAM = st.floats(-4, 4)


def _draw(draw, shape, elements, bulk, label, dtype):
    return round_to(arrays(draw, shape, elements, bulk, label), dtype)


def _with_infinities(values, raw):
    """round_to clamps infinities to the dtype's range: put back the drawn -inf."""
    return np.where(np.isneginf(raw), -INF, values)


def _draw_with_inf(draw, shape, elements, bulk, label, dtype):
    raw = arrays(draw, shape, elements, bulk, label)
    return _with_infinities(round_to(np.where(np.isinf(raw), 0.0, raw), dtype), raw)


def _mixed(rng, n, choices):
    """numpy fill for large arrays: uniform draws from each (low, high) range, mixed."""
    parts = [rng.uniform(lo, hi, n) for lo, hi in choices]
    return np.choose(rng.integers(0, len(parts), n), parts)


# --- kl_div --------------------------------------------------------------------------------------

LOG_PROBS = {  # elements and numpy fill of each regime of kl_div's input (log-probabilities)
    "log-probs": (st.one_of(st.floats(-12, 0), st.sampled_from([0.0, -0.6931471805599453])),
                  lambda rng, n: rng.uniform(-12, 0, n)),
    "reals": (st.floats(-20, 5), lambda rng, n: rng.uniform(-20, 5, n)),
    "large": (st.one_of(st.floats(-1e4, -20), st.sampled_from([-88.7, -750.0, -3e4, -1e30])),
              lambda rng, n: -(10 ** rng.uniform(1.3, 4, n))),
    "masked": (st.one_of(st.floats(-12, 0), st.just(-INF)),
               lambda rng, n: np.where(rng.random(n) < 0.3, -INF, rng.uniform(-12, 0, n))),
}
PROBS = {  # targets as probabilities (log_target=False)
    "probs": (st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0])),
              lambda rng, n: np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0, 1, n))),
    "one-hot": (st.sampled_from([0.0, 1.0]), lambda rng, n: (rng.random(n) < 0.1) * 1.0),
    "unnormalised": (st.floats(0, 50), lambda rng, n: rng.uniform(0, 50, n)),
    "tiny": (st.one_of(st.just(0.0), st.floats(1e-30, 1e-4)),
             lambda rng, n: 10 ** rng.uniform(-30, -4, n)),
}
LOG_TARGETS = {  # targets as log-probabilities (log_target=True)
    "log-probs": LOG_PROBS["log-probs"],
    "reals": (st.floats(-30, 8), lambda rng, n: rng.uniform(-30, 8, n)),
    "masked": LOG_PROBS["masked"],
    "large": (st.one_of(st.floats(-1e4, -30), st.sampled_from([-1e30, -INF])),
              lambda rng, n: -(10 ** rng.uniform(1.5, 4, n))),
}


def kl_arrays(draw, shape, dtype):
    """(input, target, options, tags) for kl_div."""
    log_target = draw(st.booleans(), label="log_target")
    x_regime = draw(st.sampled_from(sorted(LOG_PROBS)), label="input regime")
    x = _draw_with_inf(draw, shape, *LOG_PROBS[x_regime], "input", dtype)
    table = LOG_TARGETS if log_target else PROBS
    t_regime = draw(st.sampled_from(sorted(table)), label="target regime")
    t = _draw_with_inf(draw, shape, *table[t_regime], "target", dtype)
    return x, t, {"log_target": log_target}, (f"log_target={log_target}", f"input-{x_regime}",
                                              f"target-{t_regime}")


# --- poisson_nll_loss ----------------------------------------------------------------------------

LOG_RATES = {
    "normal": (st.floats(-8, 8), lambda rng, n: rng.uniform(-8, 8, n)),
    "exp-overflow": (st.one_of(st.floats(8, 120), st.sampled_from([11.0, 11.1, 88.7, 89.0,
                                                                    709.0, 710.0, 1e4])),
                     lambda rng, n: rng.uniform(8, 120, n)),
    "large-negative": (st.one_of(st.floats(-1e4, -20), st.just(-1e30)),
                       lambda rng, n: -(10 ** rng.uniform(1.3, 4, n))),
}
RATES = {
    "normal": (st.floats(0, 20), lambda rng, n: rng.uniform(0, 20, n)),
    "zero-tiny": (st.one_of(st.just(0.0), st.floats(1e-12, 1e-5)),
                  lambda rng, n: np.where(rng.random(n) < 0.3, 0.0, 10 ** rng.uniform(-12, -5, n))),
    "negative": (st.one_of(st.floats(-5, 0), st.sampled_from([-1e-8, -5e-9, -1e-9])),
                 lambda rng, n: rng.uniform(-5, 0, n)),
    "large": (st.floats(20, 1e4), lambda rng, n: 10 ** rng.uniform(1.3, 4, n)),
}
COUNTS = {
    "counts": (st.integers(0, 50).map(float), lambda rng, n: rng.integers(0, 51, n) * 1.0),
    "around-one": (st.sampled_from([0.0, 0.5, 1.0, 1.0078125, 1.5, 2.0]),
                   lambda rng, n: rng.choice([0.0, 0.5, 1.0, 1.0078125, 1.5, 2.0], n)),
    "fractional": (st.floats(0, 5), lambda rng, n: rng.uniform(0, 5, n)),
    "large": (st.one_of(st.floats(50, 3e4), st.just(1e30)),
              lambda rng, n: 10 ** rng.uniform(1.7, 4, n)),
}
POISSON_EPS = (1e-8, 1e-8, 1e-4, 0.5, 1e-12)


def poisson_arrays(draw, shape, dtype):
    """(input, target, options, tags) for poisson_nll_loss."""
    log_input = draw(st.booleans(), label="log_input")
    full = draw(st.booleans(), label="full")
    eps = draw(st.sampled_from(POISSON_EPS), label="eps")
    table = LOG_RATES if log_input else RATES
    x_regime = draw(st.sampled_from(sorted(table)), label="input regime")
    x = _draw(draw, shape, *table[x_regime], "input", dtype)
    y_regime = draw(st.sampled_from(sorted(COUNTS)), label="target regime")
    y = _draw(draw, shape, *COUNTS[y_regime], "target", dtype)
    options = {"log_input": log_input, "full": full, "eps": eps}
    return x, y, options, (f"log_input={log_input}", f"full={full}", f"input-{x_regime}",
                           f"target-{y_regime}")


# --- gaussian_nll_loss ---------------------------------------------------------------------------

MEANS = {
    "normal": (st.floats(-8, 8), lambda rng, n: rng.uniform(-8, 8, n)),
    "large": (st.one_of(st.floats(-1e4, 1e4), st.sampled_from([300.0, -3e4, 1e20])),
              lambda rng, n: rng.uniform(-1e4, 1e4, n)),
    "tiny": (st.one_of(st.just(0.0), st.floats(-1e-6, 1e-6)),
             lambda rng, n: rng.uniform(-1e-6, 1e-6, n)),
}
VARIANCES = {
    "normal": (st.floats(0.01, 10), lambda rng, n: rng.uniform(0.01, 10, n)),
    "below-eps": (st.one_of(st.just(0.0), st.floats(0, 2e-6), st.sampled_from([1e-6, 1e-3])),
                  lambda rng, n: rng.uniform(0, 2e-6, n)),
    "large": (st.floats(10, 1e6), lambda rng, n: 10 ** rng.uniform(1, 6, n)),
}
GAUSSIAN_EPS = (1e-6, 1e-6, 1e-3, 0.25, 1e-4)
VAR_SHAPES = ("same", "same", "last-dropped", "one-axis")


def var_shape(draw, shape):
    """(var's shape, kind): input's shape, without its last dim, or with one dim set to 1."""
    kind = draw(st.sampled_from(VAR_SHAPES), label="var shape")
    if kind == "last-dropped" and len(shape) >= 1:
        return tuple(shape[:-1]), kind
    if kind == "one-axis" and any(d != 1 for d in shape):
        axis = draw(st.sampled_from([i for i, d in enumerate(shape) if d != 1]), label="axis")
        return tuple(1 if i == axis else d for i, d in enumerate(shape)), kind
    return tuple(shape), "same"


def gaussian_arrays(draw, shape, dtype):
    """(input, target, var, options, tags) for gaussian_nll_loss."""
    regime = draw(st.sampled_from(sorted(MEANS)), label="mean regime")
    x = _draw(draw, shape, *MEANS[regime], "input", dtype)
    close = draw(st.booleans(), label="target near input")
    y = x if close else _draw(draw, shape, *MEANS[regime], "target", dtype)
    v_shape, kind = var_shape(draw, shape)
    v_regime = draw(st.sampled_from(sorted(VARIANCES)), label="var regime")
    v = _draw(draw, v_shape, *VARIANCES[v_regime], "var", dtype)
    options = {"full": draw(st.booleans(), label="full"),
               "eps": draw(st.sampled_from(GAUSSIAN_EPS), label="eps")}
    return x, y, v, options, (f"input-{regime}", f"var-{v_regime}", f"var-{kind}",
                              f"full={options['full']}")


# --- the case strategy ---------------------------------------------------------------------------

def _layout_tags(layouts):
    return tuple(sorted({f"layout-{v}" for v in layouts.values() if v != "contiguous"}))


def output_shape(shape, reduction):
    return tuple(shape) if reduction == "none" else ()


def case_strategy(name):
    """The random cases of one loss for one variant (dtype, reduction)."""
    @st.composite
    def cases(draw, variant):
        """Random cases of one loss for one dtype and reduction."""
        dtype, reduction = variant.dtype, variant.options[0][1]
        shape, kind = pointwise_shape(draw)
        if name == "kl_div":
            x, y, options, tags = kl_arrays(draw, shape, dtype)
            args = {"input": x, "target": y}
        elif name == "poisson_nll_loss":
            x, y, options, tags = poisson_arrays(draw, shape, dtype)
            args = {"input": x, "target": y}
        else:
            x, y, v, options, tags = gaussian_arrays(draw, shape, dtype)
            args = {"input": x, "target": y, "var": v}
        names = list(args)
        layouts = draw(layouts_for(names, [np.shape(args[n]) for n in names]), label="layouts")
        for n, layout in layouts.items():
            if layout == "expanded":
                args[n] = make_expandable(args[n])
        case = Case(dtype, args, {"reduction": reduction, **options}, layouts,
                    (kind,) + tags + _layout_tags(layouts))
        out = output_shape(shape, reduction)
        case.grad_output = (upstream_gradient(draw, out, dtype) if out == () else
                            round_to(arrays(draw, out, UPSTREAM, lambda rng, n:
                                            rng.uniform(-4, 4, n), "grad_output"), dtype))
        return case

    return cases


# --- edge cases ----------------------------------------------------------------------------------

def _kl_edges(dtype, rng):
    logits = rng.normal(size=(3, 5)) * 3
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = np.exp(rng.normal(size=(3, 5)))
    q /= q.sum(-1, keepdims=True)
    return [
        ("empty", np.zeros((0, 4)), np.zeros((0, 4)), {}),
        ("scalar", np.array(-1.25), np.array(0.375), {}),
        ("vector", log_p[0], q[0], {}),
        ("distributions", log_p, q, {}),
        ("zero-targets", log_p, np.where(q < 0.2, 0.0, q), {}),
        ("one-hot", log_p, np.eye(5)[[0, 3, 4]], {}),
        ("neg-inf-input", np.array([-INF, -INF, -1.0, -INF]), np.array([0.0, 0.5, 0.0, 0.0]), {}),
        ("neg-inf-input-all-zero", np.array([[-INF, -2.0], [-0.5, -INF]]),
         np.array([[0.0, 0.25], [0.75, 0.0]]), {}),
        ("log-target", log_p, np.log(q), {"log_target": True}),
        ("neg-inf-log-target", np.array([-1.0, -INF, -2.0, -INF]),
         np.array([-INF, -INF, -0.5, -0.25]), {"log_target": True}),
        ("large-log-probs", np.array([-1e4, -88.7, -1e30, -750.0]),
         np.array([0.25, 0.5, 1e-3, 1.0]), {}),
        ("unnormalised", log_p, q * 7.5, {}),
        ("large-sum", -rng.uniform(5, 40, (2, 2048)), rng.uniform(0, 1, (2, 2048)), {}),
    ]


def _poisson_edges(dtype, rng):
    stirling = np.array([0.0, 0.5, 1.0, 1.0078125, 2.0, 50.0])
    return [
        ("empty", np.zeros((2, 0)), np.zeros((2, 0)), {}),
        ("scalar", np.array(0.5), np.array(3.0), {}),
        ("stirling-boundary", np.full(6, 0.75), stirling, {"full": True}),
        ("stirling-boundary-rates", np.full(6, 2.5), stirling,
         {"full": True, "log_input": False}),
        ("zero-rate", np.array([0.0, 0.0, 1e-3]), np.array([0.0, 2.0, 1.0]),
         {"log_input": False}),
        ("negative-rate", np.array([-1.0, -1e-9, 2.0]), np.array([1.0, 1.0, 1.0]),
         {"log_input": False}),
        ("exp-overflow", np.array([11.0, 12.0, 88.0, 89.0, 100.0, 709.0, 710.0]),
         np.full(7, 2.0), {}),
        ("large-counts", np.array([3.0, 7.0, 9.0]), np.array([100.0, 1000.0, 8000.0]),
         {"full": True}),
        ("counts", rng.normal(size=(4, 6)), rng.poisson(3.0, (4, 6)) * 1.0, {"full": True}),
        ("large-sum", rng.uniform(2, 5, (2, 2048)), rng.poisson(4.0, (2, 2048)) * 1.0, {}),
    ]


def _gaussian_edges(dtype, rng):
    x, y = rng.normal(size=(3, 4)) * 2, rng.normal(size=(3, 4))
    return [
        ("empty", np.zeros((0, 3)), np.zeros((0, 3)), np.ones((0, 1)), {}),
        ("scalar", np.array(1.5), np.array(-0.5), np.array(2.0), {}),
        ("unbatched-scalar-var", x[0], y[0], np.array(0.75), {}),
        ("var-column", x, y, np.array([[0.5], [1.0], [2.0]]), {}),
        ("var-last-dropped", x, y, np.array([0.5, 1.0, 2.0]), {}),
        ("var-row", x, y, np.array([[0.5, 1.0, 2.0, 4.0]]), {}),
        ("var-below-eps", np.array([1.0, 0.0, 2.0, 1e-3]), np.zeros(4),
         np.array([0.0, 1e-9, 5e-7, 1e-6]), {}),
        ("var-near-eps", np.array([0.5, 0.5, 0.5]), np.zeros(3), np.array([9e-4, 1e-3, 1.1e-3]),
         {"eps": 1e-3}),
        ("full", x, y, np.abs(y) + 0.5, {"full": True}),
        ("large-residual", np.array([300.0, -3e4, 0.0]), np.array([0.0, 0.0, 0.0]),
         np.array([4.0, 1e4, 1.0]), {}),
        ("large-sum", rng.normal(size=(2, 2048)) * 30, np.zeros((2, 2048)),
         np.full((2, 1), 0.5), {}),
    ]


def edge_strategy(name):
    def edges(variant, rng):
        """The fixed catalogue of edge cases of one loss for one dtype and reduction."""
        dtype, reduction = variant.dtype, variant.options[0][1]
        out = []
        rows = {"kl_div": _kl_edges, "poisson_nll_loss": _poisson_edges,
                "gaussian_nll_loss": _gaussian_edges}[name](dtype, rng)
        for row in rows:
            edge_id, x, y, options = row[0], row[1], row[2], row[-1]
            args = {"input": _with_infinities(round_to(np.where(np.isinf(x), 0, x), dtype), x),
                    "target": _with_infinities(round_to(np.where(np.isinf(y), 0, y), dtype), y)}
            if name == "gaussian_nll_loss":
                args["var"] = round_to(row[3], dtype)
            shape = output_shape(np.shape(x), reduction)
            g = rng.uniform(-3, 3, shape) if shape else np.array(rng.choice([-2.5, 0.75]))
            layouts = {"input": "transposed", "target": "sliced"} if np.ndim(x) == 2 and \
                edge_id in ("distributions", "counts", "var-column") else {}
            out.append((edge_id, Case(dtype, args, {"reduction": reduction, **options}, layouts,
                                      (edge_id,), grad_output=round_to(g, dtype))))
        return out

    return edges
