"""Random checks share their cases: the first check of a loss and variant draws them with
hypothesis, its siblings (the other kind of check, the other candidates) replay them, and a
failure met on replay is drawn afresh so that hypothesis shrinks it (conformance.test_conformance).

The checks here are stand-ins judging one-number cases, so that what is drawn, replayed and
shrunk can be counted exactly."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import strategies as st

from conformance.cases import Case
from conformance.checks import Verdict
from conformance.run import ConformanceRun
from conformance.specs import Variant
from conformance.test_conformance import _run_member

VARIANT = Variant("float32", (("reduction", "mean"),))
CANDIDATE = SimpleNamespace(label="stand-in", impl="stand_in_module")


def _case(value: int) -> Case:
    return Case("float32", {"input": np.array([float(value)])}, {"reduction": "mean"})


def _spec(draws: list):
    """A loss whose cases are single numbers 0..1000; ``draws`` collects every case drawn."""
    def drawn(value):
        case = _case(value)
        draws.append(case)
        return case

    return SimpleNamespace(name="stand_in_loss", cases=lambda variant: st.integers(0, 1000)
                           .map(drawn))


def _run() -> ConformanceRun:
    return ConformanceRun(candidates=[CANDIDATE], seed=0, profile="default",
                          require_grad=False, required_dtypes=set(), known_deviations=False)


def _check(judged: list, fails=lambda value: False):
    """A check that passes unless ``fails(value)``; ``judged`` collects the cases it judged."""
    def check(candidate, spec, case, repeat=1):
        judged.append(case)
        value = case.args["input"][0]
        return Verdict(passed=not fails(value), message=f"wrong at {value}")
    return check


def test_a_sibling_check_replays_the_cases_drawn_before_it(request):
    draws, first, second = [], [], []
    run, spec = _run(), _spec(draws)
    _run_member(_check(first), run, CANDIDATE, spec, VARIANT, 10, request)
    drawn = list(draws)
    _run_member(_check(second), run, CANDIDATE, spec, VARIANT, 10, request)
    assert len(first) == 10
    assert draws == drawn  # nothing drawn for the sibling
    assert second == first  # the very cases, in order


def test_a_failure_met_on_replay_is_drawn_afresh_and_shrunk(request):
    draws, judged = [], []
    run, spec = _run(), _spec(draws)
    _run_member(_check([]), run, CANDIDATE, spec, VARIANT, 30, request)
    failing = [c.args["input"][0] for c in draws if c.args["input"][0] >= 40]
    assert failing  # the drawn cases hold failures for the sibling below
    with pytest.raises(AssertionError, match="wrong at 40.0"):  # shrunk to the smallest
        _run_member(_check(judged, fails=lambda v: v >= 40), run, CANDIDATE, spec, VARIANT,
                    30, request)


def test_a_replayed_failure_that_drawing_afresh_misses_is_reported_as_it_was(request):
    run, spec = _run(), _spec([])
    run.drawn.store((spec.name, VARIANT, 10), [_case(5), _case(-7)])  # -7 is never drawn
    with pytest.raises(pytest.fail.Exception, match="wrong at -7.0"):
        _run_member(_check([], fails=lambda v: v < 0), run, CANDIDATE, spec, VARIANT, 10,
                    request)


def test_a_check_that_fails_keeps_no_cases_for_its_siblings(request):
    draws = []
    run, spec = _run(), _spec(draws)
    with pytest.raises(AssertionError):
        _run_member(_check([], fails=lambda v: v > 3), run, CANDIDATE, spec, VARIANT, 10,
                    request)
    assert run.drawn.lookup((spec.name, VARIANT, 10)) is None
