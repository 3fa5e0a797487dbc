"""What a run will need, sent to the prefetch process in the order the run will need it.

At the end of collection the run knows its tests and their order: the random value checks,
then the gradient checks, then the edge values and the edge gradients, each over the (loss,
variant group)s in the same order, then the property checks. ``plan`` asks the prefetch process
(``conformance.prefetch``) for the random cases of every selected value check's members, with
their value references and, where the gradient check is selected too, their gradient
references; for the references of every selected edge test; and for the random pairs of every
selected property check, with the references of their two calls. Only while prefetching is
on; each check finds what is done in the caches, and does itself what is not.
"""

from __future__ import annotations

import math

from . import prefetch as ahead_of_need
from .prefetch import DRAWN, EDGE_GRADIENTS, EDGE_VALUES, GRADIENTS, PROPERTIES
from .properties import property_examples
from .references import prefetch


def member_share(run, group) -> int:
    """The random examples each member of a variant group draws."""
    return math.ceil(run.examples / len(group.members))


def drawn_key(spec, variant, examples: int) -> tuple:
    """The key of a member's random cases in ``ConformanceRun.drawn``."""
    return (spec.name, variant, examples)


def pairs_key(spec, group, prop, examples: int) -> tuple:
    """The key of a property check's random pairs in ``ConformanceRun.drawn``."""
    return ("pairs", spec.name, group, prop.name, examples)


def plan(run, items) -> None:
    """Note which test functions the selected ``items`` (in run order) run for which loss and
    variant group (``run.selected``, ``run.order``), then, while prefetching is on, ask for
    everything they will need, soonest first."""
    from .specs import SPECS, Spec

    properties = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        # a test function that the selection left no parameters (the language-model tier
        # runs only the edge tests) is one item whose values are pytest's NOTSET: not a loss
        if isinstance(params.get("spec"), Spec) and "variant" in params:
            key = (params["spec"].name, params["variant"])
            run.selected.add((item.originalname,) + key)
            run.order.setdefault(key, len(run.order))
            if "prop" in params:
                properties.setdefault(key, {})[params["prop"].name] = params["prop"]
    if not ahead_of_need.allowed():
        return
    for kind in ("draw", "pairs"):
        ahead_of_need.keep_results(kind, run.drawn.store)
    for (spec_name, group), order in run.order.items():
        spec = SPECS[spec_name]
        if run.will_run("test_value", spec, group):
            _plan_draws(run, spec, group, order)
        _plan_edges(run, spec, group, order)
    examples = property_examples(run.examples)
    for (spec_name, group), props in properties.items():
        order = run.order[(spec_name, group)]
        for number, prop in enumerate(props.values()):
            ahead_of_need.ask(pairs_key(SPECS[spec_name], group, prop, examples),
                              (PROPERTIES, order, number), "pairs", spec_name,
                              (group, prop.name, examples, run.seed))


def _plan_draws(run, spec, group, order: int) -> None:
    share = member_share(run, group)
    gradients = run.will_run("test_gradient", spec, group)
    for member, variant in enumerate(group.members):
        ahead_of_need.ask(drawn_key(spec, variant, share), (DRAWN, order, member), "draw",
                          spec.name, (variant, share, run.seed, gradients))


def _plan_edges(run, spec, group, order: int) -> None:
    values = run.will_run("test_edge_value", spec, group)
    gradients = run.will_run("test_edge_gradient", spec, group)
    for variant in group.members if values or gradients else ():
        for _, case in run.edge_cases(spec, variant):
            if case is None:  # the language-model tier's are built when they run
                continue
            if values:
                prefetch(spec, case, "value", (EDGE_VALUES, order))
            if gradients:
                prefetch_gradient(spec, case, (EDGE_GRADIENTS, order))


def prefetch_gradient(spec, case, priority: tuple) -> None:
    """The gradient reference of ``case`` computed ahead, where the case has a gradient."""
    if spec.differentiable_args(case):
        prefetch(spec, case, "gradient", priority)


def gradient_priority(run, spec, group) -> tuple:
    """The priority of the gradients of a random case of this loss and group."""
    return (GRADIENTS, run.order.get((spec.name, group), 0))
