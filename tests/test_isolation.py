"""The candidate's call overlapped with the reference (conformance/isolation.py, checks.py):
answers are never read for the wrong call, and a verdict is what it was when the two ran in
turn."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import checks
from conformance.candidates import load_candidate
from conformance.cases import Case
from conformance.isolation import (HUNG_FLOOR_S, MIN_WORKER_MEMORY, IsolatedRunner,
                                   default_memory_limit)
from conformance.specs import SPECS
from loss_reference.engine import EvaluationError

L1 = SPECS["l1_loss"]


def _case(value: float) -> Case:
    return Case("float64", {"input": np.array([value]), "target": np.array([0.0])},
                {"reduction": "sum"})


@pytest.fixture(scope="module")
def runner():
    runner = IsolatedRunner("torch", "cpu", check_timeout=60, memory_limit_bytes=2**34)
    yield runner
    runner.stop()


def test_an_answer_left_unread_is_never_read_for_the_next_call(runner):
    runner.send(L1, _case(3.0), False, None)  # its answer is never read
    call = runner.call(L1, _case(5.0), False, None)
    assert float(call.value) == 5.0
    assert runner.starts >= 2  # the worker holding the unread answer was replaced


def test_the_worker_reports_how_long_its_calls_took(runner):
    runner.call(L1, _case(1.0), False, None)
    runner.call(L1, _case(2.0), False, None)
    assert 0 < runner.slowest_s < 10


class _Raising:
    """A candidate stub whose call raises ``error``, started like a real one."""

    def __init__(self, error):
        self.error = error
        self.framework = load_candidate("torch").framework

    def start_call(self, *args, **kwargs):
        def wait():
            raise self.error
        return wait


def _unevaluable():
    raise EvaluationError("the reference cannot certify this case")


def test_the_candidates_failure_comes_before_the_references():
    """A candidate that raises fails the check even where the reference could not have judged
    it (as when the reference ran after the call)."""
    call, failure, expected = checks.call_beside(_unevaluable, _Raising(ValueError("boom")),
                                                  L1, _case(1.0), False)
    assert call is None and expected is None
    assert not failure.passed and "ValueError: boom" in failure.message


def test_the_references_error_stands_where_the_call_succeeded():
    candidate = load_candidate("torch")
    with pytest.raises(EvaluationError, match="cannot certify"):
        checks.call_beside(_unevaluable, candidate, L1, _case(1.0), False)


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_an_in_process_call_raises_its_exception_when_waited_for():
    candidate = load_candidate("torch")  # no runner: the call runs at once, in this process
    mismatched = Case("float64", {"input": np.ones(2), "target": np.ones(3)}, {})
    wait = candidate.start_call(L1, mismatched)
    with pytest.raises(RuntimeError):
        wait()


def test_after_a_hang_a_fresh_workers_first_call_gets_the_time_first_calls_took():
    """A first call pays lazy set-up (a JIT's compile): judged against the slowest first call,
    so a candidate that compiles is not taken for hung on every call after its first hang."""
    runner = IsolatedRunner("torch", "cpu", check_timeout=60, memory_limit_bytes=2**34)
    try:
        runner.hangs, runner.slowest_first_s, runner.slowest_s = 1, 0.2, 0.001
        assert runner.call_limit() == 10.0  # the next call is a fresh worker's first
        runner.call(L1, _case(1.0), False, None)
        runner.slowest_first_s, runner.slowest_s = 0.2, 0.001
        assert runner.call_limit() == HUNG_FLOOR_S  # later calls: the floor over 50 times 1 ms
    finally:
        runner.stop()


FIRST_GRADIENT_CHECK = """
import sys
import numpy as np
from conformance.candidates import load_candidate
from conformance.cases import Case
from conformance.specs import SPECS

candidate = load_candidate("torch")
candidate.framework.warm_up()
loaded = set(sys.modules)
case = Case("float32", {"input": np.ones(3), "target": np.zeros(3)}, {"reduction": "mean"},
            grad_output=np.array(2.0))
candidate.call_here(SPECS["l1_loss"], case, with_grad=True)
print(sorted(set(sys.modules) - loaded))
"""


def test_a_workers_first_gradient_check_imports_nothing():
    """Every worker forked after a crash or a hang warms up before it answers "ready": its
    first gradient check must not import modules on the way (torch.autograd.grad with an
    upstream gradient once imported sympy, 0.6-1 s per fresh worker)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FIRST_GRADIENT_CHECK], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_default_memory_limit_shares_half_the_machine_among_the_workers():
    """Several candidates' workers (and -n N test processes, each with its own) must not be
    allowed half the machine each, yet each gets room for torch and a CUDA context."""
    one = default_memory_limit(1)
    assert default_memory_limit(4) == max(MIN_WORKER_MEMORY, one // 4)
    assert default_memory_limit(10**6) == MIN_WORKER_MEMORY
    assert one >= MIN_WORKER_MEMORY
