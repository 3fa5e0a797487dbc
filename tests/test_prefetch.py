"""Work done ahead in a process of their own (conformance.prefetch): a check finds the
prefetch process's references and drawn cases and does not redo them, a job that fails there
is done by the test process, a dead prefetch process costs nothing but speed, the cases drawn
ahead are those the check would draw, and a whole run reaches the same verdicts with
prefetching as without."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from types import SimpleNamespace

from conformance import references, test_conformance, test_properties
from conformance.ahead import drawn_key
from conformance.cases import Case, draw_cases
from conformance.checks import Verdict
from conformance.run import ConformanceRun
from conformance.properties import draw_pairs, properties_of, property_examples
from conformance import prefetch as ahead_of_need
from conformance.prefetch import Prefetcher
from conformance.specs import SPECS, group_variants
from conformance.test_conformance import _run_member

from conftest import run_conformance

SPEC = SPECS["mse_loss"]
SOON, LATER = (0,), (1,)  # priorities: the lower first
CANDIDATE = SimpleNamespace(label="stand-in", impl="stand_in_module")
WAIT_S = 60.0  # the prefetch process's start (imports) and one small reference


def _case(shift: float) -> Case:
    values = np.array([0.5, -1.25, 3.0]) + shift
    return Case("float32", {"input": values, "target": np.array([1.0, 0.0, -2.0])},
                {"reduction": "sum"}, grad_output=np.array(2.0))


@pytest.fixture
def prefetching():
    """Prefetching on, with an empty reference cache, for one test."""
    references._CACHE.clear()
    ahead_of_need.allow(True)
    ahead_of_need._ACTIVE = Prefetcher()  # (else started by the first job asked for)
    yield ahead_of_need._ACTIVE
    ahead_of_need.allow(False)
    references._CACHE.clear()


def _wait_until_cached(spec, case, kind):
    key = references.fingerprint(spec, case, kind)
    deadline = time.monotonic() + WAIT_S
    while key not in references._CACHE:
        assert time.monotonic() < deadline, "the prefetch process sent no result"
        ahead_of_need.active().collect()
        time.sleep(0.05)


def _same(result, expected) -> bool:
    """Equal to the last bit, exact estimates and tolerance magnitudes included."""
    if isinstance(expected, (np.ndarray, np.generic)):
        return (np.asarray(result).dtype == np.asarray(expected).dtype
                and np.array_equal(result, expected, equal_nan=True))
    if isinstance(expected, (tuple, list)):
        return len(result) == len(expected) and all(map(_same, result, expected))
    if isinstance(expected, dict):
        return result.keys() == expected.keys() and all(_same(result[k], expected[k])
                                                        for k in expected)
    if hasattr(expected, "__dict__"):
        return type(result) is type(expected) and _same(vars(result), vars(expected))
    return result == expected


def _no_local_computing(monkeypatch):
    def refuse(spec, case, kind):
        raise AssertionError("the test process computed a reference that was prefetched")
    monkeypatch.setattr(references, "compute_reference", refuse)


def test_a_check_takes_the_prefetched_value_and_gradient(prefetching, monkeypatch):
    case = _case(0.0)
    expected_value = references.compute_reference(SPEC, case, "value")
    expected_grad = references.compute_reference(SPEC, case, "gradient")
    references.prefetch(SPEC, case, "gradient", SOON)
    references.prefetch(SPEC, case, "value", LATER)
    _wait_until_cached(SPEC, case, "value")
    _no_local_computing(monkeypatch)
    assert _same(references.value_reference(SPEC, case), expected_value)
    assert _same(references.gradient_reference(SPEC, case), expected_grad)


def _big_case() -> Case:
    """A case whose reference takes about a second."""
    return Case("float64", {"input": np.linspace(-3.0, 3.0, 4_000_000),
                            "target": np.linspace(1.0, -2.0, 4_000_000)}, {"reduction": "sum"})


def test_a_job_in_progress_is_waited_for_not_computed_twice(prefetching, monkeypatch):
    big = _big_case()
    expected = references.compute_reference(SPEC, big, "value")  # about a second
    key = references.fingerprint(SPEC, big, "value")
    references.prefetch(SPEC, big, "value", SOON)
    deadline = time.monotonic() + WAIT_S
    while prefetching._running != key:  # until the prefetch process says it started
        assert time.monotonic() < deadline, "the prefetch process did not start the job"
        prefetching.collect()
        time.sleep(0.01)
    _no_local_computing(monkeypatch)
    assert _same(references.value_reference(SPEC, big), expected)
    assert prefetching.counts["received"] == 1 and prefetching.counts["withdrawn"] == 0


def test_a_job_not_started_is_withdrawn_and_computed_here(prefetching):
    case = _case(7.0)
    key = references.fingerprint(SPEC, case, "value")
    references.prefetch(SPEC, _big_case(), "value", SOON)  # keeps the process busy
    prefetching.submit(key, LATER, "value", SPEC.name, case)
    assert _same(references.value_reference(SPEC, case),  # before the process started it
                 references.compute_reference(SPEC, case, "value"))
    assert prefetching.counts["withdrawn"] == 1 and key not in prefetching._pending
    _wait_until_cached(SPEC, _big_case(), "value")
    time.sleep(0.5)  # the process would compute the withdrawn job next: time enough for it
    prefetching.collect()
    assert prefetching.counts["received"] == 1, "the withdrawn job was computed all the same"


def test_a_job_that_fails_in_the_prefetch_process_is_computed_here(prefetching):
    case = _case(3.0)
    key = references.fingerprint(SPEC, case, "value")
    prefetching.submit(key, SOON, "value", "no_such_loss_in_the_prefetch_process", case)
    deadline = time.monotonic() + WAIT_S
    while key in prefetching._pending:  # the process answers "failed"
        assert time.monotonic() < deadline, "the prefetch process sent no answer"
        prefetching.collect()
        time.sleep(0.05)
    assert prefetching.counts["failed"] == 1 and key not in references._CACHE
    assert _same(references.value_reference(SPEC, case),
                 references.compute_reference(SPEC, case, "value"))


def test_a_dead_prefetch_process_leaves_its_jobs_to_the_checks(prefetching):
    case = _case(5.0)
    prefetching._process.kill()
    prefetching._process.join()
    references.prefetch(SPEC, case, "value", SOON)
    prefetching._running = references.fingerprint(SPEC, case, "value")  # as if it had started
    assert _same(references.value_reference(SPEC, case),
                 references.compute_reference(SPEC, case, "value"))
    assert prefetching._process is None  # stopped: the run goes on without it


def test_a_run_reaches_the_same_verdicts_and_errors_with_prefetching(tmp_path):
    args = ["conformance", "--impl=torch", "--loss=mse_loss", "--loss=triplet_margin_loss",
            "--profile=quick", "--seed=3"]
    on = run_conformance(tmp_path, *args, "--prefetch=on")
    off = run_conformance(tmp_path, *args, "--prefetch=off")
    assert on.returncode == off.returncode == 0, on
    assert on.outcomes == off.outcomes
    for part in ("accuracy", "error_samples", "failures"):
        assert on.summary()[part] == off.summary()[part], part


VARIANT = SPEC.variants[0]
SPEC_GROUP = group_variants(SPEC.variants)[0]


def _run():
    return ConformanceRun(candidates=[CANDIDATE], seed=3, profile="quick", require_grad=False,
                          required_dtypes=set(), known_deviations=False)


def _judging(judged: list):
    def check(candidate, spec, case, repeat=1):
        judged.append(case)
        return Verdict(passed=True, message="")
    return check


def test_draw_cases_draws_what_a_passing_random_check_draws(request):
    judged = []
    _run_member(_judging(judged), _run(), CANDIDATE, SPEC, VARIANT, 6, request)
    drawn = draw_cases(SPEC, VARIANT, 6, 3)
    assert len(drawn) == len(judged) >= 6
    assert all(repr(a) == repr(b) for a, b in zip(drawn, judged))


def test_a_random_check_replays_the_cases_drawn_ahead(prefetching, request, monkeypatch):
    run, judged = _run(), []
    ahead_of_need.keep_results("draw", run.drawn.store)
    key = drawn_key(SPEC, VARIANT, 6)
    ahead_of_need.ask(key, (0, 0, 0), "draw", SPEC.name, (VARIANT, 6, run.seed, True))
    deadline = time.monotonic() + WAIT_S
    while run.drawn.lookup(key) is None:
        assert time.monotonic() < deadline, "the prefetch process drew nothing"
        prefetching.collect()
        time.sleep(0.05)
    for case in run.drawn.lookup(key):  # their references follow the drawing
        _wait_until_cached(SPEC, case, "value")
        _wait_until_cached(SPEC, case, "gradient")

    def no_drawing(*args, **kwargs):
        raise AssertionError("the check drew cases that were drawn ahead")
    monkeypatch.setattr(test_conformance, "_draw", no_drawing)
    _no_local_computing(monkeypatch)
    _run_member(_judging(judged), run, CANDIDATE, SPEC, VARIANT, 6, request)
    assert [repr(c) for c in judged] == [repr(c) for c in draw_cases(SPEC, VARIANT, 6, 3)]


PLAIN_CONSTANTS = (4.25, -7.75, 0.0625, 1234567)  # local constants for the default backend


def test_cases_depend_on_the_seed_alone_whatever_ran_before():
    """A default-backend hypothesis test that ran first in the process (a user's own, or one
    of this suite's tests) must not change the cases: the prefetch process and the test
    process draw the same."""
    before = [repr(c) for c in draw_cases(SPEC, VARIANT, 30, 5)]

    @settings(max_examples=300, database=None, deadline=None)
    @given(st.floats(-8, 8), st.integers(0, 2**32 - 1), st.floats(0.25, 4))
    def plain(x, n, g):
        pass

    plain()
    assert [repr(c) for c in draw_cases(SPEC, VARIANT, 30, 5)] == before


def test_draw_pairs_draws_what_a_passing_property_check_draws(request, monkeypatch):
    group, prop = SPEC_GROUP, properties_of(SPEC)[0]
    judged = []

    def passing(candidate, spec, pair, prop):
        judged.append(pair)
        return Verdict(passed=True, message="")
    monkeypatch.setattr(test_properties, "check_property", passing)
    run = _run()
    drawn = test_properties._draw(run, CANDIDATE, SPEC, group, prop, request)
    ahead = draw_pairs(SPEC, group, prop, property_examples(run.examples), run.seed)
    assert len(ahead) == len(judged) == len(drawn) >= property_examples(run.examples)
    assert [repr(p) for p in ahead] == [repr(p) for p in judged]


@pytest.mark.parametrize("isolation, prefetch, started", [
    ("none", "on", True), ("none", "off", False), ("process", "off", True)])
def test_the_fork_server_starts_at_configure_for_whatever_forks_from_it(
        tmp_path, monkeypatch, isolation, prefetch, started):
    """The candidates' workers and the prefetch process fork from one server: it starts while
    the run collects (its imports take seconds) wherever either will run, even without
    isolation, where the prefetch process's first start waited for it."""
    from conformance import isolation as isolation_module

    calls = []
    monkeypatch.setattr(isolation_module, "start_worker_server", lambda: calls.append(1))
    run = run_conformance(tmp_path, "conformance", "--impl=torch", "--loss=mse_loss",
                          f"--isolation={isolation}", f"--prefetch={prefetch}",
                          "--collect-only", "-q")
    assert run.returncode == 0, run
    assert bool(calls) == started
