"""References computed ahead in a process of their own (conformance.prefetch): a check finds
the prefetch process's result in the cache and computes nothing, a job that fails there is
computed by the test process, a dead prefetch process costs nothing but speed, and a whole run
reaches the same verdicts with prefetching as without."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conformance import references
from conformance.cases import Case
from conformance.prefetch import LATER, SOON, Prefetcher
from conformance.specs import SPECS

from conftest import run_conformance

SPEC = SPECS["mse_loss"]
WAIT_S = 60.0  # the prefetch process's start (imports) and one small reference


def _case(shift: float) -> Case:
    values = np.array([0.5, -1.25, 3.0]) + shift
    return Case("float32", {"input": values, "target": np.array([1.0, 0.0, -2.0])},
                {"reduction": "sum"}, grad_output=np.array(2.0))


@pytest.fixture
def prefetching():
    """Prefetching on, with an empty reference cache, for one test."""
    references._CACHE.clear()
    references.allow_prefetching(True)
    references._PREFETCHER = Prefetcher()  # (else started by the first prefetch)
    yield references._PREFETCHER
    references.allow_prefetching(False)
    references._CACHE.clear()


def _wait_until_cached(spec, case, kind):
    key = references.fingerprint(spec, case, kind)
    deadline = time.monotonic() + WAIT_S
    while key not in references._CACHE:
        assert time.monotonic() < deadline, "the prefetch process sent no result"
        references._PREFETCHER.collect(references._CACHE.store)
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
        prefetching.collect(references._CACHE.store)
        time.sleep(0.01)
    _no_local_computing(monkeypatch)
    assert _same(references.value_reference(SPEC, big), expected)
    assert prefetching.counts["received"] == 1 and prefetching.counts["withdrawn"] == 0


def test_a_job_not_started_is_withdrawn_and_computed_here(prefetching):
    case = _case(7.0)
    key = references.fingerprint(SPEC, case, "value")
    references.prefetch(SPEC, _big_case(), "value", SOON)  # keeps the process busy
    prefetching.submit(key, LATER, SPEC.name, "value", case)
    assert _same(references.value_reference(SPEC, case),  # before the process started it
                 references.compute_reference(SPEC, case, "value"))
    assert prefetching.counts["withdrawn"] == 1 and key not in prefetching._pending
    _wait_until_cached(SPEC, _big_case(), "value")
    time.sleep(0.5)  # the process would compute the withdrawn job next: time enough for it
    prefetching.collect(references._CACHE.store)
    assert prefetching.counts["received"] == 1, "the withdrawn job was computed all the same"


def test_a_job_that_fails_in_the_prefetch_process_is_computed_here(prefetching):
    case = _case(3.0)
    key = references.fingerprint(SPEC, case, "value")
    prefetching.submit(key, SOON, "no_such_loss_in_the_prefetch_process", "value", case)
    deadline = time.monotonic() + WAIT_S
    while key in prefetching._pending:  # the process answers "failed"
        assert time.monotonic() < deadline, "the prefetch process sent no answer"
        prefetching.collect(references._CACHE.store)
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
