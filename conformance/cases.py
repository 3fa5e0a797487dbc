"""Cases and the shared hypothesis strategies that draw them.

A Case is one concrete call: argument arrays holding exactly the values the candidate will see
(floating arguments already rounded to the dtype under test, kept as float64, which holds every
float32/float16/bfloat16 number exactly), keyword options, a layout per argument and tags that
name the regions the case probes. Specs build their strategies from the pieces here.

Arrays of up to ``MAX_DRAWN_ELEMENTS`` have every element drawn by hypothesis, so failures shrink
element by element. Larger arrays (huge class counts) are filled by numpy from a drawn seed and
regime, with hypothesis-drawn special values planted at drawn positions: hypothesis cannot draw
tens of thousands of elements per example.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.internal.cache import LRUCache
from hypothesis.internal.conjecture import providers
from hypothesis.internal.conjecture.providers import (AVAILABLE_PROVIDERS, Constants,
                                                      HypothesisProvider)

from loss_reference.formats import format_of, round_float64

MAX_DRAWN_ELEMENTS = 24
LAYOUTS = ("contiguous", "transposed", "sliced", "expanded")


# --- drawing ---------------------------------------------------------------------------------

class SeedOnlyProvider(HypothesisProvider):
    """Hypothesis's own provider, without the constants it gathers from the source of every
    module loaded in the process (hypothesis 6.131+ mixes them into its draws).

    Those constants would make the cases a seed draws depend on what else is loaded: the
    candidate's own module, the other candidates of the run, the suite's tests. A failure's
    reproduce line (one candidate, one test) must draw the very cases the full run drew, and
    every candidate of a run must be judged on the same cases, so the suite draws from the seed
    alone. Registered as the backend ``DRAWING`` (hypothesis's documented
    ``AVAILABLE_PROVIDERS`` registry for alternative backends).
    """

    @property
    def _local_constants(self):
        return Constants()

    def _maybe_draw_constant(self, *args, **kwargs):
        # hypothesis keeps the constants it draws from in one cache shared by every provider
        # of the process: where a test of the default backend filled it first (the user's own
        # hypothesis tests in the same run), the other modules' constants would come back
        # through it. Ours draw through a cache of their own.
        shared = providers.CONSTANTS_CACHE
        providers.CONSTANTS_CACHE = _CONSTANTS_CACHE
        try:
            return super()._maybe_draw_constant(*args, **kwargs)
        finally:
            providers.CONSTANTS_CACHE = shared


# (choice type, constraints) -> the constants SeedOnlyProvider draws from (hypothesis's size)
_CONSTANTS_CACHE = LRUCache(1024)
DRAWING = "loss-conformance"
AVAILABLE_PROVIDERS[DRAWING] = SeedOnlyProvider


def drawing_settings(examples: int, shrink: bool) -> settings:
    """The hypothesis settings of a random check: ``examples`` cases drawn from the seed alone
    (``SeedOnlyProvider``), no deadline, no example database, shrinking on request."""
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=examples, deadline=None, database=None, phases=phases,
                    suppress_health_check=list(HealthCheck), print_blob=False,
                    backend=DRAWING)


def draw_cases(spec, variant, examples: int, run_seed: int) -> list:
    """The cases a random check of ``spec``'s ``variant`` draws with ``examples`` examples
    and ``run_seed``, where every case is judged and passes: hypothesis's own draw, in order (the
    prefetch process draws them ahead for the check to replay)."""
    drawn = []

    @seed(run_seed)
    @drawing_settings(examples, shrink=False)
    @given(case=spec.cases(variant))
    def collect(case):
        drawn.append(case)

    collect()
    return drawn


@dataclass
class Case:
    """One call of one loss: exact argument values, options, layouts and region tags."""

    dtype: str
    args: dict  # name -> np.ndarray (float64 holding dtype values, or int64), list, or None
    options: dict = field(default_factory=dict)
    layouts: dict = field(default_factory=dict)
    tags: tuple = ()
    grad_output: np.ndarray | None = None

    def __repr__(self) -> str:
        with np.printoptions(precision=17, threshold=64, edgeitems=4, linewidth=100):
            args = ", ".join(f"{k}={_show(v)}" for k, v in self.args.items())
            grad = (f", grad_output={_show(self.grad_output)}"
                    if self.grad_output is not None else "")
        return (f"Case(dtype={self.dtype!r}, {args}, options={self.options!r}, "
                f"layouts={self.layouts!r}, tags={self.tags!r}{grad})")

    def describe(self) -> str:
        """A one-line summary: shapes, options, layouts and tags."""
        shapes = ", ".join(f"{k}{_shape(v)}" for k, v in self.args.items() if v is not None)
        layouts = ", ".join(f"{k}:{v}" for k, v in self.layouts.items() if v != "contiguous")
        return (f"{self.dtype} {shapes} options={self.options} layouts=[{layouts or 'contiguous'}]"
                f" regions={list(self.tags)}")


def _show(value):
    if isinstance(value, np.ndarray):
        return f"np.array({np.array2string(value, separator=', ')}, dtype={value.dtype.name})"
    return repr(value)


def _shape(value):
    if isinstance(value, np.ndarray):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        return f"[list of {len(value)}]"
    return f"={value!r}"  # a scalar argument such as num_classes


def round_to(values, dtype: str) -> np.ndarray:
    """Round float64 values to the dtype (nearest even), returned as float64; clamps overflow."""
    fmt = format_of(dtype)
    values = np.asarray(values, dtype=np.float64)
    # min and max first: a language model's logits need no clamping, and np.clip made a copy
    # of hundreds of MB (a NaN fails both tests and passes through the clip unchanged)
    if values.size and not (-fmt.max_finite <= np.min(values)
                            and np.max(values) <= fmt.max_finite):
        values = np.clip(values, -fmt.max_finite, fmt.max_finite)
    return round_float64(values, fmt)


# --- value regimes ------------------------------------------------------------------------------

def _signed(magnitudes):
    return st.tuples(st.booleans(), magnitudes).map(lambda t: -t[1] if t[0] else t[1])


REGIMES = {
    "normal": st.floats(-8, 8),
    "large": _signed(st.one_of(st.floats(17, 120), st.floats(120, 1e4),
                               st.sampled_from([37.4, 88.7, 100.0, 750.0, 1e4, 3e4, 1e30]))),
    "tiny": _signed(st.one_of(st.just(0.0), st.floats(1e-10, 1e-3))),
}
REGIMES["mixed"] = st.one_of(*REGIMES.values())


def bulk_values(rng, regime, size):
    """numpy-drawn values for large arrays, in the same regimes."""
    if regime == "normal":
        return rng.uniform(-8, 8, size)
    if regime == "large":
        return rng.choice([-1, 1], size) * 10 ** rng.uniform(1.2, 4, size)
    if regime == "tiny":
        return rng.choice([-1, 1], size) * 10 ** rng.uniform(-10, -3, size)
    parts = [bulk_values(rng, r, size) for r in ("normal", "large", "tiny")]
    return np.choose(rng.integers(0, 3, size), parts)


# Strategies are built once per distinct argument set: hypothesis validates every new strategy
# object on its first draw, which cost more than the drawing itself when each case built its own.
STRATEGY_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=STRATEGY_CACHE_SIZE)
def _fixed_lists(elements, size):
    """st.lists of exactly ``size`` elements."""
    return st.lists(elements, min_size=size, max_size=size)


@functools.lru_cache(maxsize=STRATEGY_CACHE_SIZE)
def _planted_lists(elements, size, planted):
    """Up to ``planted`` (position, value) pairs for an array of ``size`` elements."""
    return st.lists(st.tuples(st.integers(0, size - 1), elements), max_size=planted)


SEEDS = st.integers(0, 2**32 - 1)


def float_array(draw, shape, elements, bulk=None, label="values", max_drawn=MAX_DRAWN_ELEMENTS,
                planted=16):
    """A float64 array of ``shape`` whose elements come from ``elements``, drawn with ``draw``
    (a composite strategy's).

    Arrays of up to ``max_drawn`` elements draw every element; larger ones draw a seed for
    ``bulk(rng, size)`` (uniform draws from [-8, 8] when None) and plant up to ``planted``
    drawn elements at drawn positions.
    """
    size = int(np.prod(shape))
    if size <= max_drawn:
        return np.array(draw(_fixed_lists(elements, size), label=label),
                        dtype=np.float64).reshape(shape)
    rng = np.random.default_rng(draw(SEEDS, label=f"{label} seed"))
    values = np.asarray(bulk(rng, size) if bulk is not None else rng.uniform(-8, 8, size),
                        dtype=np.float64)
    specials = draw(_planted_lists(elements, size, planted), label=f"{label} planted")
    for index, value in specials:
        values[index] = value
    return values.reshape(shape)


@functools.lru_cache(maxsize=None)
def subnormals(dtype):
    """(element strategy, bulk filler) for multiples of the dtype's smallest subnormal, up to
    twice its smallest normal."""
    fmt = format_of(dtype)
    top = 2 ** fmt.precision
    unit = fmt.smallest_subnormal
    return (st.integers(-top, top).map(lambda k: k * unit),
            lambda rng, n: rng.integers(-top, top + 1, n) * unit)


def regime_values(draw, shape, dtype, regime, label, max_drawn=MAX_DRAWN_ELEMENTS, planted=8):
    """An array of ``shape`` in a value regime (REGIMES, or 'subnormal'), rounded to dtype."""
    if regime == "subnormal":
        elements, bulk = subnormals(dtype)
    else:
        elements, bulk = REGIMES[regime], (lambda rng, n: bulk_values(rng, regime, n))
    return round_to(float_array(draw, shape, elements, bulk, label, max_drawn=max_drawn,
                                planted=planted), dtype)


def logits(draw, shape, dtype):
    """Logits in a drawn regime (normal, large, tiny or mixed), rounded to dtype; tags it."""
    regime = draw(st.sampled_from(tuple(REGIMES)), label="logit regime")
    values = float_array(draw, shape, REGIMES[regime], lambda rng, n: bulk_values(rng, regime, n),
                         label="logits")
    return round_to(values, dtype), regime


def saturation_tags(x, dtype) -> tuple:
    """Region tags for logits: where sigmoid saturates in the dtype, where values are tiny."""
    tags = []
    threshold = {"float64": 37.0, "float32": 17.0, "float16": 8.0, "bfloat16": 6.0}[dtype]
    if x.size and np.abs(x).max() > threshold:
        tags.append("saturated")
    if x.size and np.any((x != 0) & (np.abs(x) < 1e-3)):
        tags.append("tiny")
    return tuple(tags)


# --- shapes and layouts ------------------------------------------------------------------------

SHAPE_KINDS = ("empty", "single", "small", "square", "tall", "unbatched", "one-class",
               "wide")


def batch_shape(draw, max_classes_wide=5000, wide_rows=2):
    """(N, C) or (C,) from a drawn shape kind; returns (shape, kind)."""
    kind = draw(st.sampled_from(SHAPE_KINDS), label="shape kind")
    small = st.integers(2, 9)
    if kind == "empty":
        shape = (0, draw(small))
    elif kind == "single":
        shape = (1, draw(small))
    elif kind == "small":
        shape = (draw(small), draw(small))
    elif kind == "square":
        n = draw(st.integers(2, 12))
        shape = (n, n)
    elif kind == "tall":
        shape = (draw(st.integers(40, 150)), draw(st.integers(2, 4)))
    elif kind == "unbatched":
        shape = (draw(st.integers(1, 12)),)
    elif kind == "one-class":
        shape = (draw(st.integers(1, 6)), draw(st.sampled_from([1, 2, 3])))
    else:
        shape = (draw(st.integers(1, wide_rows)), draw(st.integers(4096, max_classes_wide)))
    return shape, kind


def layouts_for(names, shapes):
    """A strategy for a layout per argument; 'expanded' needs a leading axis to repeat."""
    return _layouts(tuple(names), tuple(len(shape) for shape in shapes))


@functools.lru_cache(maxsize=STRATEGY_CACHE_SIZE)
def _layouts(names, ranks):
    def choices(rank):
        if rank == 0:
            return st.just("contiguous")
        return st.sampled_from(("contiguous", "sliced", "expanded")
                               + (("transposed",) if rank == 2 else ()))

    return st.fixed_dictionaries({n: choices(r) for n, r in zip(names, ranks)})


def make_expandable(values: np.ndarray) -> np.ndarray:
    """Repeat the first row along the leading axis, so the array can be an expanded view."""
    if values.ndim == 0 or values.shape[0] == 0:
        return values
    return np.broadcast_to(values[:1], values.shape).copy()


SCALAR_UPSTREAM = st.one_of(st.floats(0.25, 4), st.floats(-4, -0.25))


def upstream_gradient(draw, output_shape, dtype):
    """A random upstream gradient: per element for 'none', a scalar other than 1 otherwise."""
    if output_shape == ():
        value = draw(SCALAR_UPSTREAM, label="grad_output")
        return round_to(np.array(value), dtype)
    values = float_array(draw, output_shape, st.floats(-4, 4), label="grad_output")
    return round_to(values, dtype)
