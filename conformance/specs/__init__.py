"""Specs: one record per loss, as a user of torch.nn.functional knows it.

A Spec names the function and its arguments, its variants (dtype and options that get a test
id of their own), the hypothesis strategy that draws Cases for a variant, a catalogue of edge
Cases that always run, the invalid calls a conforming candidate must reject, the exact
reference for values and gradients, and the magnitudes the tolerance policy needs. Specs are
grouped by family in this package; ``SPECS`` lists them all by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from loss_reference.formats import DTYPES

from ..cases import Case

REDUCTIONS = ("none", "sum", "mean")  # torch's reductions (kl_div adds 'batchmean')


@dataclass(frozen=True)
class Variant:
    """The parameters that get their own test id: a dtype and fixed options."""

    dtype: str
    options: tuple = ()  # sorted (name, value) pairs

    @property
    def id(self) -> str:
        return "-".join([self.dtype] + [str(v) for _, v in self.options])

    def option_dict(self) -> dict:
        return dict(self.options)


def reduction_variants(reductions=REDUCTIONS, dtypes=DTYPES) -> tuple:
    """One Variant per dtype and reduction: what most losses vary per test id."""
    return tuple(Variant(d, (("reduction", r),)) for d in dtypes for r in reductions)


@dataclass(frozen=True)
class VariantGroup:
    """The variants one test covers: every option set (reduction) of one dtype.

    A random check draws its variant among the members, so the dtypes get a test id each while
    the reductions share the examples; an edge case runs under every member.
    """

    dtype: str
    members: tuple  # Variant, in the spec's order

    @property
    def id(self) -> str:
        return self.dtype


def group_variants(variants) -> tuple:
    """The variants grouped by dtype, in their first-seen order."""
    by_dtype = {}
    for variant in variants:
        by_dtype.setdefault(variant.dtype, []).append(variant)
    return tuple(VariantGroup(dtype, tuple(members)) for dtype, members in by_dtype.items())


@dataclass(frozen=True)
class InvalidCall:
    """A call that must raise: what is wrong with it, and the case that carries it."""

    id: str
    reason: str
    case: Case


# The rungs of every speed ladder, by name (``--speed-sizes`` picks among them): a ladder's
# ``sizes`` hold one size per rung, in this order. The last is left out unless asked for.
RUNGS = ("tiny", "small", "medium", "large", "huge")
DEFAULT_RUNGS = RUNGS[:-1]
VARIANT_RUNG = "medium"  # where a ladder's option variants are timed


@dataclass(frozen=True)
class SpeedLadder:
    """How to time one loss: the sizes, typical inputs, and the work a roofline charges it.

    ``case(size, dtype, rng)`` builds a Case of typical valid inputs (the loss's common options
    included) at ``size``, one size per rung of ``RUNGS`` (a shape of the main input, or for a
    loss with several dimensions, such as linear_cross_entropy's (tokens, hidden, vocabulary),
    the ladder's own tuple); ``bytes_moved(case, backward)`` counts each input read once and
    the output (and, with ``backward``, every gradient) written once; ``elements(case)`` counts
    the units of elementwise work (described in words by ``work``) and ``kernel(x)`` does that
    work alone on a torch tensor, so the suite can measure the compute roof of this machine
    for it; ``flops(case, backward)``, where given, counts the floating-point operations of
    the loss's matrix products, charged against this machine's measured matrix-product rate
    (the third roof). ``differentiated`` names the arrays the forward+backward pass takes
    gradients of (a training step's: targets and class weights are data). ``variants`` are
    (name, function(case, rng) -> Case) pairs: other common options (a class weight,
    reduction='none', ...), timed at the ``VARIANT_RUNG`` only. ``dtypes``: the dtypes timed,
    where they do not follow ``--speed-dtype`` (multi_hot's 'exact'). ``inputs``: the typical
    call in words, for the reports.
    """

    sizes: tuple  # one per rung of RUNGS, from tiny to out of the caches
    case: Callable
    bytes_moved: Callable
    elements: Callable
    work: str
    kernel: Callable
    differentiated: tuple = ("input",)
    flops: Callable | None = None
    variants: tuple = ()
    dtypes: tuple | None = None
    inputs: str = ""

    def rung_sizes(self, rungs=DEFAULT_RUNGS) -> list:
        """(rung name, size) of the named rungs, in ladder order."""
        return [(name, size) for name, size in zip(RUNGS, self.sizes) if name in rungs]


@dataclass(frozen=True)
class Spec:
    """Everything the generic checks need to know about one function.

    ``reference(case)`` returns the certified ``Evaluated`` output (or, for exact specs such
    as multi_hot, a float64 array); ``magnitude(case)`` the tolerance ``Magnitude``;
    ``reference_grad(case)`` and ``grad_magnitudes(case)`` the same per differentiable
    argument of the case (``differentiable_args``), for the case's ``grad_output``.
    ``properties`` are the loss's own identities (``conformance.properties.Property``; the
    reduction identities are added for every loss with a 'none' reduction),
    ``mean_divisor(case, none_shape)`` what its 'mean' divides the sum of the 'none' output by
    when that is not the element count.
    """

    name: str
    family: str
    positional: tuple  # argument names passed positionally, in order
    keyword_arrays: tuple  # array arguments passed by keyword when present
    variants: tuple
    cases: Callable  # Variant -> hypothesis strategy of Case
    edge_cases: Callable  # Variant -> list of (id, Case)
    invalid_calls: Callable  # () -> list of InvalidCall
    reference: Callable
    magnitude: Callable | None = None
    differentiable: tuple = ()
    # name -> predicate(case): an argument of ``differentiable`` that is one only on some cases
    # (cross_entropy's weight: with probability targets, not with class indices)
    differentiable_when: dict = field(default_factory=dict)
    reference_grad: Callable | None = None
    grad_magnitudes: Callable | None = None
    exact: bool = False  # outputs are compared exactly (no dtype, no tolerance)
    output_dtype: str | None = None  # None: the output has the dtype under test
    notes: dict = field(default_factory=dict)
    speed: SpeedLadder | None = None  # None: the loss is not timed
    # the language-model tier (conformance/specs/llm.py): variant -> [(id, build(seed))]
    llm: Callable | None = None
    properties: tuple = ()
    mean_divisor: Callable | None = None  # None: the number of 'none' elements

    def differentiable_args(self, case) -> tuple:
        """The arguments of ``differentiable`` that ``case`` passes as float arrays (an int64
        index target has no gradient) and whose ``differentiable_when`` predicate, if any,
        holds on it: those whose gradients are checked."""
        def is_float_array(value):
            return isinstance(value, np.ndarray) and value.dtype.kind == "f"

        return tuple(name for name in self.differentiable
                     if is_float_array(case.args.get(name))
                     and self.differentiable_when.get(name, lambda _: True)(case))


# The loss families, one module each in this package (and in conformance/deviations and
# conformance/builtin/numpy_<family>.py), in the order reports list them.
FAMILIES = ("multilabel", "pointwise", "classification", "linear", "binary", "probabilistic",
            "margin", "embedding", "sequence")


class SpecError(Exception):
    """A Spec lacks something the generic checks need; the message names what to add where."""


def validate(spec: Spec) -> None:
    """Raise SpecError naming the first field a Spec lacks (at import: a missing entry fails
    loudly, not as a wrong or silently skipped test)."""
    where = f"spec {spec.name!r} in conformance/specs/{spec.family}.py"
    required = [("positional", spec.positional), ("variants", spec.variants),
                ("cases", spec.cases), ("edge_cases", spec.edge_cases),
                ("invalid_calls", spec.invalid_calls), ("reference", spec.reference)]
    if not spec.exact:
        required.append(("magnitude", spec.magnitude))
    if spec.differentiable:
        required += [("reference_grad", spec.reference_grad),
                     ("grad_magnitudes", spec.grad_magnitudes)]
    for name, value in required:
        if not value:
            raise SpecError(f"{where} has no {name}: give its Spec a {name}=...")
    if spec.speed is not None and len(spec.speed.sizes) != len(RUNGS):
        raise SpecError(f"{where}: its speed ladder has {len(spec.speed.sizes)} sizes; give one "
                        f"per rung {RUNGS} (conformance/specs/speed.py has the standard ones)")
    if spec.family not in FAMILIES:
        raise SpecError(f"{where}: family {spec.family!r} is not listed in FAMILIES "
                        f"(conformance/specs/__init__.py)")


def _load():
    import importlib

    specs = {}
    for family in FAMILIES:
        for spec in importlib.import_module(f"{__name__}.{family}").SPECS:
            validate(spec)
            if spec.name in specs:
                raise SpecError(f"spec {spec.name!r} is defined twice (families "
                                f"{specs[spec.name].family} and {spec.family})")
            specs[spec.name] = spec
    return specs


SPECS = _load()
