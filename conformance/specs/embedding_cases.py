"""Cases of the embedding family (conformance/specs/embedding.py): the user distance functions
of triplet_margin_with_distance_loss, hypothesis strategies, edge cases and invalid calls."""

from __future__ import annotations

import functools
import math

import numpy as np
from hypothesis import strategies as st

from loss_reference.formats import format_of

from ..cases import (Case, float_array, layouts_for, make_expandable, regime_values,
                     round_to, upstream_gradient)
from . import InvalidCall

LOSSES = ("cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss")
POSITIONAL = {"cosine_embedding_loss": ("input1", "input2", "target"),
              "triplet_margin_loss": ("anchor", "positive", "negative"),
              "triplet_margin_with_distance_loss": ("anchor", "positive", "negative")}


# --- user distance functions ---------------------------------------------------------------------

class Distance:
    """A user distance function for triplet_margin_with_distance_loss, built per framework.

    ``for_framework(framework)`` returns the callable the candidate gets (torch and jax:
    differentiable by their autodiff; numpy: a callable with ``vjp(grad, a, b) -> (d a, d b)``,
    which the built-in numpy candidate uses for gradients). The repr names it (test output, repro
    files), and the object is also callable itself on torch tensors or numpy arrays, so a repro
    script that passes it as it is still runs.
    """

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Distance({self.name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Distance) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def for_framework(self, framework):
        """The distance as the framework's candidate takes it (torch, jax or numpy)."""
        if framework.name == "torch":
            return _torch_distance(self.name)
        if framework.name == "jax":
            return _jax_distance(self.name)
        return _NumpyDistance(self.name)

    def __call__(self, a, b):
        return self.for_framework(_Named("numpy" if isinstance(a, np.ndarray) else "torch"))(a, b)


class _Named:
    def __init__(self, name):
        self.name = name


def _torch_distance(name):
    import torch
    import torch.nn.functional as F

    if name == "l1":
        return lambda a, b: (a - b).abs().sum(-1)
    if name == "relu-l1":
        return lambda a, b: torch.relu(a - b).sum(-1)
    return lambda a, b: 1 - F.cosine_similarity(a, b, dim=-1)


def _jax_distance(name):
    import jax.numpy as jnp

    if name == "l1":
        return lambda a, b: jnp.abs(a - b).sum(-1)
    if name == "relu-l1":
        return lambda a, b: jnp.maximum(a - b, 0).sum(-1)

    def cosine(a, b):
        norms = [jnp.maximum(jnp.sqrt((x * x).sum(-1)), 1e-8) for x in (a, b)]
        return 1 - (a * b).sum(-1) / (norms[0] * norms[1])

    return cosine


class _NumpyDistance:
    """A numpy distance (computed in float64, rounded to the inputs' dtype) with its vjp."""

    def __init__(self, name):
        self.name = name

    def _parts(self, a, b):
        return np.asarray(a, np.float64), np.asarray(b, np.float64)

    def __call__(self, a, b):
        x, y = self._parts(a, b)
        if self.name == "l1":
            d = np.abs(x - y).sum(-1)
        elif self.name == "relu-l1":
            d = np.maximum(x - y, 0).sum(-1)
        else:
            na, nb = _clamped_norms(x, y)
            d = 1 - (x * y).sum(-1) / (na * nb)
        return np.asarray(d).astype(np.result_type(a, b))

    def vjp(self, grad, a, b):
        """(d/da, d/db) of sum(grad * distance(a, b)), float64."""
        x, y = self._parts(a, b)
        g = np.asarray(grad, np.float64)[..., None]
        if self.name == "l1":
            s = np.sign(x - y)
            return g * s, -g * s
        if self.name == "relu-l1":
            s = (x > y).astype(np.float64)
            return g * s, -g * s
        na, nb = _clamped_norms(x, y)
        dot = (x * y).sum(-1)
        da = -(y - (dot / (na * na))[..., None] * x) / (na * nb)[..., None]
        db = -(x - (dot / (nb * nb))[..., None] * y) / (na * nb)[..., None]
        return g * da, g * db


def _clamped_norms(x, y):
    eps = 1e-8  # F.cosine_similarity's
    return (np.maximum(np.sqrt((x * x).sum(-1)), eps), np.maximum(np.sqrt((y * y).sum(-1)), eps))


DISTANCE_FUNCTIONS = (None, Distance("l1"), Distance("relu-l1"), Distance("cosine"))


def distance_kind(options) -> str:
    """The reference's name of a case's distance ('pairwise' for torch's default)."""
    function = options.get("distance_function")
    return "pairwise" if function is None else function.name


# --- strategies ----------------------------------------------------------------------------------

DRAWN_ELEMENTS = 24
arrays = functools.partial(float_array, max_drawn=DRAWN_ELEMENTS, planted=8)
# 'wide' (D in the hundreds) is drawn rarely: its gradient rows are long, and a row with one
# element near a rounding boundary is recomputed whole by the slow certified pass.
SHAPE_KINDS = ("empty", "single", "small", "small", "small", "unbatched", "unbatched",
               "one-feature", "single", "small", "wide")


def embedding_shape(draw):
    """(N, D) or (D,) from a drawn kind; returns (shape, kind)."""
    kind = draw(st.sampled_from(SHAPE_KINDS), label="shape kind")
    if kind == "empty":
        return (0, draw(st.integers(1, 4))), kind
    if kind == "single":
        return (1, draw(st.integers(1, 6))), kind
    if kind == "small":
        return (draw(st.integers(2, 6)), draw(st.integers(2, 6))), kind
    if kind == "unbatched":
        return (draw(st.integers(1, 8)),), kind
    if kind == "one-feature":
        return (draw(st.integers(1, 6)), 1), kind
    return (draw(st.integers(1, 2)), draw(st.integers(300, 700))), kind


def values(draw, shape, dtype, regime, label):
    """Values of a regime (cases.REGIMES, 'subnormal' or 'grid'), rounded to the dtype."""
    if regime == "grid":  # small integers: exact distances, exact hinge kinks
        return round_to(arrays(draw, shape, st.integers(-4, 4).map(float),
                               lambda rng, n: rng.integers(-4, 5, n), label), dtype)
    return regime_values(draw, shape, dtype, regime, label, max_drawn=DRAWN_ELEMENTS)


def nudge(x, dtype, draw, label):
    """x moved by -3..3 spacings of the dtype per element."""
    fmt = format_of(dtype)
    steps = arrays(draw, x.shape, st.integers(-3, 3), lambda rng, n: rng.integers(-3, 4, n), label)
    return round_to(x + steps * fmt.ulp(x), dtype)


COSINE_REGIMES = ("normal", "large", "tiny", "mixed", "subnormal", "parallel", "zero-rows",
                  "orthogonal")
MARGINS_COSINE = (0.0, 0.0, 0.5, -0.5, 0.1, 1.0, -1.0, 0.3)


def cosine_inputs(draw, shape, dtype):
    """(input1, input2, regime): pairs in a regime; 'parallel' and 'zero-rows' probe cos = +-1
    and the zero vectors (B41), 'orthogonal' the exact kink cos = 0 with margin 0."""
    regime = draw(st.sampled_from(COSINE_REGIMES), label="regime")
    if regime in ("parallel", "zero-rows", "orthogonal"):
        x1 = values(draw, shape, dtype, "grid" if regime == "orthogonal" else "normal", "input1")
        if regime == "parallel":
            factor = draw(st.sampled_from([1.0, -1.0, 2.0, -0.5, 3.0]), label="factor")
            x2 = nudge(round_to(x1 * factor, dtype), dtype, draw, "nudge")
        elif regime == "orthogonal":
            x2 = np.zeros(shape)
            if shape[-1] >= 2:  # (u, v, ...) and (-v, u, 0, ...)
                x2[..., 0], x2[..., 1] = -x1[..., 1], x1[..., 0]
        else:
            x2 = values(draw, shape, dtype, "normal", "input2")
            rows = arrays(draw, shape[:-1], st.integers(0, 3), lambda rng, n: rng.integers(0, 4, n),
                          "zero rows")
            x1 = np.where((rows % 2 == 1)[..., None], 0.0, x1)
            x2 = np.where((rows >= 2)[..., None], 0.0, x2)
        return x1, round_to(x2, dtype), regime
    return (values(draw, shape, dtype, regime, "input1"),
            values(draw, shape, dtype, regime, "input2"), regime)


TRIPLET_REGIMES = ("normal", "large", "tiny", "mixed", "grid", "anchor-equals-positive",
                   "close")
P_VALUES = (2.0, 2.0, 1.0, 3.0, 1.5, math.inf)
EPS_VALUES = (1e-6, 1e-6, 0.0, 1e-3, 0.5)
MARGINS = (1.0, 1.0, 0.5, 2.0, 0.1, 3.7, 1e-3)


def triplet_inputs(draw, shape, dtype):
    """(anchor, positive, negative, regime): 'anchor-equals-positive' (zero distance, B41),
    'close' (a few spacings apart), 'grid' (small integers: exact kinks, ties of swap's min)."""
    regime = draw(st.sampled_from(TRIPLET_REGIMES), label="regime")
    if regime in ("anchor-equals-positive", "close"):
        a = values(draw, shape, dtype, "normal", "anchor")
        p = a.copy() if regime == "anchor-equals-positive" else nudge(a, dtype, draw, "nudge")
        return a, p, values(draw, shape, dtype, "normal", "negative"), regime
    return (*(values(draw, shape, dtype, regime, n) for n in ("anchor", "positive",
                                                               "negative")), regime)


def within_range(x, function, dtype):
    """Inputs of a user distance: its values must fit the dtype (an infinite distance makes
    the loss inf - inf whatever the loss does: the loss can only compose what it is given), so
    elements are clipped to +-max / (8 D); the 'cosine' distance's rows also stay away from 0."""
    bound = format_of(dtype).max_finite / (8 * max(x.shape[-1], 1))
    x = np.clip(x, -bound, bound)
    return far_from_zero(x) if function.name == "cosine" else x


def far_from_zero(x):
    """The 'cosine' user distance's inputs: rows whose norm is below 1e-4 get 1 added to
    every element, and elements are clipped to +-1e4. F.cosine_similarity is the user's
    function, not the loss under test: inside its eps its clamp runs under no_grad (its
    gradient is not the derivative of its value), and in float32 it squares elements without
    scaling (|x| > 1.8e19 overflows); the loss only composes what it returns. Equal rows stay
    equal and a constant row constant, so an expanded layout keeps its view."""
    if x.shape[-1] == 0:
        return x
    x = np.clip(x, -1e4, 1e4)
    small = np.sqrt(np.sum(x * x, axis=-1, keepdims=True)) < 1e-4
    return np.where(small, x + 1.0, x)


def finish_case(draw, name, dtype, reduction, args, shape, options, tags, constrain=None):
    """Layouts, upstream gradient and tags around drawn arguments; ``constrain`` (a function
    of an argument's values) applied to every argument after the layouts made some of them
    expandable (an expanded row repeats its first element or row: a cosine row of norm 9 whose
    first element was 1.2e-38 became one of norm 3e-38, inside F.cosine_similarity's eps)."""
    names = [n for n in POSITIONAL[name] if args[n] is not None]
    shapes = [np.shape(args[n]) for n in names]
    layouts = draw(layouts_for(names, shapes), label="layouts")
    for n, layout in layouts.items():
        if layout == "expanded":
            args[n] = make_expandable(args[n])
    if constrain is not None:
        args = {n: constrain(v) if n in names else v for n, v in args.items()}
    out_shape = shape[:-1] if reduction == "none" else ()
    if out_shape == ():
        g = upstream_gradient(draw, (), dtype)
    else:
        g = round_to(arrays(draw, out_shape, st.floats(-4, 4),
                            lambda rng, n: rng.uniform(-4, 4, n), "grad_output"), dtype)
    layout_tags = tuple(sorted({f"layout-{v}" for v in layouts.values() if v != "contiguous"}))
    return Case(dtype, args, {"reduction": reduction, **options}, layouts,
                tuple(tags) + layout_tags, grad_output=g)


def cases_for(name):
    """The hypothesis strategy of one loss's random cases for a variant."""
    @st.composite
    def cases(draw, variant):
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        shape, kind = embedding_shape(draw)
        constrain = None
        if name == "cosine_embedding_loss":
            x1, x2, regime = cosine_inputs(draw, shape, dtype)
            y = arrays(draw, shape[:-1], st.sampled_from([1.0, -1.0]),
                       lambda rng, n: rng.choice([1.0, -1.0], n), "target")
            margin = draw(st.sampled_from(MARGINS_COSINE), label="margin")
            args = {"input1": x1, "input2": x2, "target": round_to(y, dtype)}
            options = {"margin": margin}
            tags = (kind, regime, f"margin={margin}")
        else:
            a, p, n, regime = triplet_inputs(draw, shape, dtype)
            options = {"margin": draw(st.sampled_from(MARGINS), label="margin"),
                       "swap": draw(st.booleans(), label="swap")}
            if name == "triplet_margin_loss":
                options["p"] = draw(st.sampled_from(P_VALUES), label="p")
                options["eps"] = draw(st.sampled_from(EPS_VALUES), label="eps")
                tags = (kind, regime, f"p={options['p']}", f"eps={options['eps']}")
            else:
                function = draw(st.sampled_from(DISTANCE_FUNCTIONS), label="distance_function")
                options["distance_function"] = function
                if function is not None:
                    def constrain(v, function=function):
                        return round_to(within_range(v, function, dtype), dtype)
                tags = (kind, regime, f"distance={distance_kind(options)}")
            if options["swap"]:
                tags += ("swap",)
            args = {"anchor": a, "positive": p, "negative": n}
        return finish_case(draw, name, dtype, reduction, args, shape, options, tags, constrain)

    return cases


# --- edge cases ----------------------------------------------------------------------------------

def _edge_rows(name, dtype, rng):
    """(id, arrays, options) of the fixed catalogue (before rounding to the dtype)."""
    fmt = format_of(dtype)
    sub, big = fmt.smallest_subnormal, min(fmt.max_finite / 4, 1e30)
    normal = rng.normal(size=(3, 4)) * 2
    if name == "cosine_embedding_loss":
        y = np.array([1.0, -1.0, 1.0])
        return [
            ("empty", [np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)], {}),
            ("unbatched", [np.array([1.0, 2.0, -0.5]), np.array([0.5, -1.0, 2.0]), np.array(-1.0)],
             {}),
            ("zero-vectors", [np.zeros((3, 4)), normal, y], {}),
            ("both-zero", [np.zeros((2, 3)), np.zeros((2, 3)), np.array([1.0, -1.0])], {}),
            ("identical", [normal, normal, y], {}),
            ("opposite", [normal, -normal, -y], {"margin": -0.5}),
            ("orthogonal-kink", [np.array([[1.0, 2.0], [3.0, -1.0]]),
                                 np.array([[-2.0, 1.0], [1.0, 3.0]]), np.array([-1.0, -1.0])], {}),
            ("tiny-norms", [normal * 1e-7, normal[::-1] * 1e-7, y], {}),
            ("subnormal", [np.full((2, 3), sub), np.full((2, 3), -3 * sub),
                           np.array([1.0, -1.0])], {}),
            ("large", [normal * big / 8, normal[::-1] * big / 8, y], {"margin": 0.5}),
            ("one-feature", [np.array([[2.0], [-1.0], [0.0]]), np.array([[3.0], [4.0], [1.0]]),
                             y], {}),
            ("wide", [rng.normal(size=(2, 4096)), rng.normal(size=(2, 4096)),
                      np.array([1.0, -1.0])], {"margin": -0.1}),
        ]
    a, n = normal, rng.normal(size=(3, 4)) * 2
    rows = [
        ("empty", [np.zeros((0, 3))] * 3, {}),
        ("unbatched", [np.array([1.0, 2.0, -0.5]), np.array([0.5, -1.0, 2.0]),
                       np.array([0.0, 0.0, 3.0])], {}),
        ("anchor-equals-positive", [a, a, n], {"margin": 5.0}),
        ("all-equal", [a, a, a], {}),
        ("hinge-kink", [np.array([[0.0], [1.0]]), np.array([[1.0], [3.0]]),
                        np.array([[2.0], [4.0]])], {"margin": 1.0}),
        ("swap-tie", [np.array([[0.0, 0.0]]), np.array([[4.0, 0.0]]), np.array([[2.0, 0.0]])],
         {"margin": 3.0, "swap": True}),
        ("swap-chooses", [a, n + 0.25, n], {"swap": True, "margin": 2.0}),
        ("large", [a * big / 8, n * big / 8, a * big / 16], {}),
        ("tiny", [a * 1e-7, n * 1e-7, a * 2e-7], {}),
        ("wide", [rng.normal(size=(2, 4096)), rng.normal(size=(2, 4096)),
                  rng.normal(size=(2, 4096))], {"margin": 10.0}),
    ]
    if name == "triplet_margin_loss":
        rows += [("zero-difference", [np.zeros((2, 3)), np.full((2, 3), 1e-6), n[:2, :3]],
                  {"margin": 9.0, "p": 1.0}),
                 ("eps-zero-equal", [a, a, n], {"eps": 0.0, "margin": 9.0}),
                 ("p-inf-tie", [np.zeros((1, 2)), np.array([[1.0, -1.0]]), np.array([[0.0, 0.5]])],
                  {"eps": 0.0, "p": math.inf, "margin": 2.0}),
                 ("p-3", [a, n, a[::-1]], {"p": 3.0}), ("p-1.5", [a, n, a[::-1]], {"p": 1.5})]
    else:
        rows += [(f"distance-{f.name}", [a, n, a[::-1] + 0.5], {"distance_function": f})
                 for f in DISTANCE_FUNCTIONS[1:]]
    return rows


def edges_for(name):
    """The fixed catalogue of edge cases of one loss for one variant (built once per variant
    and generator state: the suite asks for it at collection and again in every test)."""
    cache = {}

    def edges(variant, rng):
        key = (variant, repr(rng.bit_generator.state))
        if key not in cache:
            cache[key] = _edges(variant, rng)
        return cache[key]

    def _edges(variant, rng):
        dtype, reduction = variant.dtype, variant.option_dict()["reduction"]
        out = []
        for edge_id, arrays_, options in _edge_rows(name, dtype, rng):
            args = dict(zip(POSITIONAL[name], (round_to(v, dtype) for v in arrays_)))
            defaults = ({"margin": 0.0} if name == "cosine_embedding_loss" else
                        {"margin": 1.0, "swap": False})
            if name == "triplet_margin_with_distance_loss":
                defaults["distance_function"] = None
            shape = np.shape(arrays_[0])[:-1] if reduction == "none" else ()
            g = rng.uniform(-3, 3, shape) if shape else np.array(rng.choice([-2.5, 0.75]))
            layouts = ({POSITIONAL[name][0]: "transposed", POSITIONAL[name][1]: "sliced"}
                       if edge_id in ("identical", "all-equal") else {})
            out.append((edge_id, Case(dtype, args, {"reduction": reduction, **defaults,
                                                    **options}, layouts, (edge_id,),
                                      grad_output=round_to(g, dtype))))
        return out

    return edges


# --- invalid calls -------------------------------------------------------------------------------

def invalid_for(name):
    """Calls torch 2.13 rejects (each verified), that a conforming candidate must reject."""
    def invalid_calls():
        x = np.zeros((2, 3))
        if name == "cosine_embedding_loss":
            y = np.ones(2)
            calls = [
                ("target-2d", "target (2, 1): 0-D or 1-D target expected",
                 [x, x, np.ones((2, 1))], {}),
                ("target-1d-for-1d-inputs", "1-D inputs need a 0-D target, got (1,)",
                 [np.zeros(3), np.zeros(3), np.ones(1)], {}),
                ("target-0d-for-2d-inputs", "2-D inputs need a 1-D target, got ()",
                 [x, x, np.array(1.0)], {}),
                ("inputs-3d", "inputs (2, 2, 3) are not 1-D or 2-D",
                 [np.zeros((2, 2, 3))] * 2 + [y], {}),
                ("feature-mismatch", "input2 (2, 4) does not match input1 (2, 3)",
                 [x, np.zeros((2, 4)), y], {}),
                ("target-length", "target (3,) for 2 rows", [x, x, np.ones(3)], {}),
                ("rank-mismatch", "input1 (2, 3) and input2 (3,)", [x, np.zeros(3), y], {}),
                ("unknown-reduction", "reduction 'avg'", [x, x, y], {"reduction": "avg"}),
            ]
        else:
            calls = [
                ("rank-mismatch", "negative (3,) has fewer dimensions than anchor (2, 3)",
                 [x, x, np.zeros(3)], {}),
                ("feature-mismatch", "positive (2, 4) does not match anchor (2, 3)",
                 [x, np.zeros((2, 4)), x], {}),
                ("margin-zero", "margin = 0 is not positive", [x, x, x], {"margin": 0.0}),
                ("margin-negative", "margin = -1 is not positive", [x, x, x], {"margin": -1.0}),
                ("unknown-reduction", "reduction 'avg'", [x, x, x], {"reduction": "avg"}),
            ]
        out = []
        for call_id, reason, arrays_, options in calls:
            case = Case("float32", dict(zip(POSITIONAL[name], arrays_)),
                        {"reduction": "mean", **options})
            out.append(InvalidCall(call_id, reason, case))
        return out

    return invalid_calls
