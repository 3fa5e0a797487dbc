"""A candidate's calls in a process of their own, so that its faults become findings.

Candidates are unfinished code: they crash their process (segfault, abort, ``os._exit``), hang,
or leak memory. With isolation (``--isolation=process``, the default) every call of a candidate
runs in a worker process (``conformance.worker``) that loads the candidate once. The test
process sends it the spec's name, the Case and the call's options, and receives the Call, or
the exception the candidate raised. Then:

- the worker dies during a call: the call raises ``CandidateCrashed`` (with the signal or exit
  status), and the next call starts a fresh worker;
- no answer within the per-call time limit: the worker is killed and the call raises
  ``CandidateHung``. The limit is ``--check-timeout`` (60 s) until the candidate's first hang;
  after it, ``HUNG_FACTOR`` times the candidate's slowest call so far as the worker timed it,
  at least ``HUNG_FLOOR_S`` (and at most --check-timeout): a candidate that hangs on a common
  subset of its inputs then costs a fraction of a second per hang, not a minute. A worker's
  first call pays lazy initialisation (a JIT's compile, a first autograd pass), so first calls
  are judged against the slowest first call too: a fresh worker after a hang is not taken for
  hung because it compiles;
- the worker's resident memory passes ``--worker-memory``: it is replaced after the call, so a
  leak never takes the run down. The default shares half of the machine's memory among the
  workers that can run at once (``default_memory_limit``).

Workers are forked from a multiprocessing fork server that has imported torch and the suite
once (``WORKER_PRELOAD``), so a worker starts in tens of milliseconds rather than the seconds
torch's import takes: a run of many candidates, or of one that crashes often, pays that import
once. (Where the platform has no fork server, workers are spawned and import everything anew.)
The worker takes the test process's environment variables as they are when it starts, and not
the main script (multiprocessing would run it again in the worker).

A check sends the call (``send``), computes the reference while the worker computes, then reads
the answer (``receive``): the two use both cores. The time limit counts from the send.

The verdicts and the results stay in the test process (and the references, but for those a
spare core computes ahead: ``conformance.prefetch``): a candidate can lose its worker, never a
measured result. Timing (``--speed``) calls candidates in the test process.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import types
from contextlib import contextmanager

from .frameworks import DtypeRefused, ForwardOnly, WrongOutput

STARTUP_TIMEOUT_S = 600.0  # importing a candidate (and torch) may be slow; a hang is not
DEFAULT_CHECK_TIMEOUT_S = 60.0
# After a candidate's first hang: the limit per call, as a multiple of its slowest call so far
# (a call that slow is surely not one of its normal ones), and never below the floor. The floor
# covers what the worker's own clock leaves out (reading the case, a garbage collection, waiting
# for a core on a busy machine): a quarter of a second is tens of scheduler time slices.
HUNG_FACTOR = 50
HUNG_FLOOR_S = 0.25
# The least --worker-memory's default gives a worker: torch and a candidate's libraries (a CUDA
# context) hold about a gigabyte before any call.
MIN_WORKER_MEMORY = 2 << 30
# What the fork server imports once for every worker it forks. torch.autograd.grad imports
# torch.fx.experimental.symbolic_shapes (and sympy with it) on its first call with an upstream
# gradient: 0.6-1 s that every fresh worker's first gradient check would pay again (a candidate
# that crashes on many calls starts hundreds of workers).
WORKER_PRELOAD = ["torch", "torch.fx.experimental.symbolic_shapes", "conformance.candidates",
                  "conformance.worker"]


class CandidateFault(Exception):
    """The candidate's process failed as a whole (crash or hang), not just the call."""

    kind = "fault"


class CandidateCrashed(CandidateFault):
    """The candidate's worker process died during a call."""

    kind = "crash"


class CandidateHung(CandidateFault):
    """The candidate's call gave no answer within the time limit."""

    kind = "hang"


class CandidateRaised(Exception):
    """An exception the candidate raised in its worker, with its type name and traceback."""

    def __init__(self, type_name: str, message: str, traceback_text: str = ""):
        super().__init__(message)
        self.type_name = type_name
        self.traceback_text = traceback_text


def exit_description(returncode: int | None) -> str:
    """'killed by SIGSEGV (signal 11)' or 'exited with status 3', from a process's exit code
    (negative: the signal that killed it)."""
    if returncode is None:
        return "stopped"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "an unknown signal"
        return f"killed by {name} (signal {-returncode})"
    return f"exited with status {returncode}"


# The exceptions the worker sends back by name; everything else is a CandidateRaised.
_KNOWN = {"ForwardOnly": ForwardOnly, "DtypeRefused": DtypeRefused, "WrongOutput": WrongOutput}


class IsolatedRunner:
    """Calls one candidate's functions in a worker process, restarted after each fault."""

    def __init__(self, impl: str, device: str, check_timeout: float, memory_limit_bytes: int,
                 threads: int = 1):
        self.impl = impl
        self.device = device
        self.check_timeout = check_timeout
        self.memory_limit_bytes = memory_limit_bytes
        self.threads = threads
        self._process = None
        self._conn = None
        self.starts = 0  # worker processes started, for the report on faults
        self.slowest_s = 0.0  # the longest call that returned (not a worker's first)
        self.slowest_first_s = 0.0  # the longest first call of a worker that returned
        self.hangs = 0
        self._calls = 0  # calls answered by the current worker
        self._unanswered = False  # a call was sent and its answer not read yet

    def call_limit(self) -> float:
        """Seconds the next call may take (see the module docstring)."""
        if not self.hangs:
            return self.check_timeout
        slowest = self._slowest_like_next()
        return min(self.check_timeout, max(HUNG_FLOOR_S, HUNG_FACTOR * slowest))

    def _slowest_like_next(self) -> float:
        if self._calls == 0:  # a first call is as slow as any other, and pays the set-up
            return max(self.slowest_first_s, self.slowest_s)
        return self.slowest_s

    def call(self, spec, case, with_grad: bool, options):
        """Run ``Candidate.call_here`` in the worker; its Call, or what went wrong, raised."""
        return self.receive(self.send(spec, case, with_grad, options))

    def send(self, spec, case, with_grad: bool, options) -> float:
        """Start the call in the worker and return at once (the time it was sent, for
        ``receive``): the test process computes the reference while the candidate computes.
        A call sent while another's answer is still unread replaces the worker first, so that
        no answer is ever read for the wrong call."""
        if self._unanswered:
            self.stop()
        self._ensure_started()
        try:
            self._conn.send((spec.name, case, with_grad, options))
        except (BrokenPipeError, OSError):
            raise self._crashed("before the call") from None
        self._unanswered = True
        return time.monotonic()

    def receive(self, sent_at: float):
        """Wait for the answer to the call sent at ``sent_at``: its Call, or what went wrong,
        raised. The time limit counts from the send."""
        limit = self.call_limit()
        self._unanswered = False
        if not self._conn.poll(max(0.0, limit - (time.monotonic() - sent_at))):
            which = "first call of a worker" if self._calls == 0 else "call"
            why = ("--check-timeout" if not self.hangs else
                   f"{HUNG_FACTOR} times its slowest {which}, {self._slowest_like_next():.3g} "
                   f"s, at least {HUNG_FLOOR_S:g} s: it hung before")
            self.stop()
            self.hangs += 1
            raise CandidateHung(f"no result after {limit:.3g} s ({why}); the call was stopped "
                                "and its process replaced")
        try:
            status, payload, recycle, seconds = self._conn.recv()
        except (EOFError, OSError):
            raise self._crashed("during the call") from None
        self._calls += 1
        if self._calls > 1:
            self.slowest_s = max(self.slowest_s, seconds)
        else:  # a worker's first call pays lazy set-up: not a normal call
            self.slowest_first_s = max(self.slowest_first_s, seconds)
        if recycle:
            self.stop()  # past --worker-memory: the next call starts a fresh worker
        if status == "ok":
            return payload
        if status in _KNOWN:
            raise _KNOWN[status](payload)
        raise CandidateRaised(*payload)

    def _crashed(self, when: str) -> CandidateCrashed:
        process = self._process
        process.join(timeout=10)
        returncode = process.exitcode
        self.stop()
        return CandidateCrashed(f"its process {exit_description(returncode)} {when}")

    def _ensure_started(self):
        if self._process is not None and self._process.is_alive():
            return
        self.stop()
        from .worker import main

        context = worker_context()
        parent, child = context.Pipe()
        self._process = context.Process(
            target=main, name=f"conformance-worker-{self.impl}",
            args=(child, self.impl, self.device, self.memory_limit_bytes, self.threads,
                  dict(os.environ)))
        with main_module_left_out():
            self._process.start()
        child.close()
        self._conn = parent
        self._calls = 0
        self.starts += 1
        started = time.monotonic()
        if not parent.poll(STARTUP_TIMEOUT_S):
            self.stop()
            raise CandidateHung(f"its process did not finish loading the candidate in "
                                f"{STARTUP_TIMEOUT_S:g} s")
        try:
            status, message, *_ = parent.recv()
        except (EOFError, OSError):
            raise self._crashed(f"while loading the candidate "
                                f"({time.monotonic() - started:.1f} s)") from None
        if status != "ready":
            self.stop()
            raise CandidateRaised("ImportError", message)

    def stop(self):
        """End the worker (killed if it does not go at once)."""
        self._unanswered = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=10)
            self._process = None


@contextmanager
def main_module_left_out():
    """multiprocessing runs the parent's main script again in every child it starts by fork
    server or spawn (to find functions defined there); the worker's function lives in this
    package, so the main script is left out: a user's script without an
    ``if __name__ == "__main__"`` guard, or a script read from stdin, would fail there."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


_CONTEXT = None


def worker_context():
    """The multiprocessing context workers start in: a fork server preloaded with
    ``WORKER_PRELOAD`` where the platform has one, else spawn. Made once per process."""
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            _CONTEXT = multiprocessing.get_context("forkserver")
            _CONTEXT.set_forkserver_preload(WORKER_PRELOAD)
        else:
            _CONTEXT = multiprocessing.get_context("spawn")
    return _CONTEXT


def start_worker_server() -> None:
    """Start the fork server now, without waiting for it: it imports torch and the suite on
    the other core while the test process imports its own modules and collects, instead of
    when the first check calls a candidate (about 2.5 s of every run's start-up here)."""
    if worker_context().get_start_method() == "forkserver":
        import multiprocessing.forkserver

        multiprocessing.forkserver.ensure_running()


def resident_bytes() -> int:
    """This process's resident memory in bytes (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def default_memory_limit(workers: int = 1) -> int:
    """Half of the machine's physical memory shared among ``workers`` worker processes (one
    per candidate in each test process), at least ``MIN_WORKER_MEMORY`` bytes each.

    Replacing a worker costs tens of milliseconds, while a leaking worker allowed half the
    machine slows every process on it (and two such workers exhaust it)."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        physical = 16 << 30
    return max(MIN_WORKER_MEMORY, physical // 2 // max(1, workers))
