"""What a run will need, sent to the prefetch process in the order the run will need it.

At the end of collection the run knows its tests and their order: the random value checks,
then the gradient checks, then the edge values and the edge gradients, each over the (loss,
variant group)s in the same order. ``plan`` asks the prefetch process (``conformance.prefetch``)
for the random cases of every selected value check's members, with their value references and,
where the gradient check is selected too, their gradient references, and for the references
of every selected edge test. Only while prefetching is on; each check finds what is done in
the caches, and does itself what is not.
"""

from __future__ import annotations

import math

from . import prefetch as ahead_of_need
from .prefetch import DRAWN, EDGE_GRADIENTS, EDGE_VALUES, GRADIENTS
from .references import prefetch


def member_share(run, group) -> int:
    """The random examples each member of a variant group draws."""
    return math.ceil(run.examples / len(group.members))


def drawn_key(spec, variant, examples: int) -> tuple:
    """The key of a member's random cases in ``ConformanceRun.drawn``."""
    return (spec.name, variant, examples)


def plan(run, items) -> None:
    """Ask for everything the selected ``items`` (in run order) will need, soonest first."""
    if not ahead_of_need.allowed():
        return
    from .specs import SPECS

    ahead_of_need.keep_results("draw", run.drawn.store)
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "spec" in params and "variant" in params:
            run.order.setdefault((params["spec"].name, params["variant"]), len(run.order))
    for (spec_name, group), order in run.order.items():
        spec = SPECS[spec_name]
        if run.will_run("test_value", spec, group):
            _plan_draws(run, spec, group, order)
        _plan_edges(run, spec, group, order)


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
