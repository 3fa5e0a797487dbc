"""References computed ahead of need, on the core a serial run leaves idle.

A serial run keeps one core busy with the test process (drawing cases, computing references,
judging, reporting), while the candidate's worker computes only briefly per call: the second
core idles most of the run. Yet many references are known long before a check asks for them:
the gradient of every random case the value check drew (the gradient check replays those very
cases later), and the value and gradient of every edge case (the edge tests run after the
random ones). The test process sends such jobs to a prefetch process, which computes them, the
soonest needed first, at a lower scheduling priority than the test process and the candidate's
worker, and sends the results back for ``references`` to keep in its cache.

When a check needs a reference the prefetch process has not reached, the test process computes
it itself and withdraws the job; one the prefetch process is computing at that moment is waited
for. A result is the same wherever it is computed (the reference is exact and deterministic),
so prefetching changes the run's speed, never a verdict. A job that fails in the prefetch
process for any reason other than ``EvaluationError`` is computed again by the test process,
where the error surfaces as it would have without prefetching, and a prefetch process that dies
is not replaced: the run goes on without it.
"""

from __future__ import annotations

import heapq
import os
import pickle
import queue

from .isolation import main_module_left_out, worker_context

NICENESS = 10  # the prefetch process yields its core to the test process and the candidate
SOON, LATER, LAST = 0, 1, 2  # job priorities, the lowest computed first
WAIT_POLL_S = 1.0  # while waiting for a job in progress: how often to check the process lives


class Prefetcher:
    """The test process's end of one prefetch process (``serve``)."""

    def __init__(self):
        context = worker_context()
        self._jobs, self._results = context.Queue(), context.Queue()
        self._process = context.Process(target=serve, args=(self._jobs, self._results),
                                        name="conformance-prefetch", daemon=True)
        with main_module_left_out():
            self._process.start()
        self._pending = set()  # keys sent and neither answered nor withdrawn
        self._running = None  # the key the prefetch process said it started last
        # jobs sent; results received; jobs waited for, withdrawn, failed in the process
        self.counts = {"sent": 0, "received": 0, "waited": 0, "withdrawn": 0, "failed": 0}

    def submit(self, key, priority: int, spec_name: str, kind: str, case) -> None:
        """Ask for ``kind`` ("value" or "gradient") of the spec named ``spec_name`` on
        ``case``, stored under ``key`` when done; a key already asked for is ignored."""
        if key in self._pending or self._process is None:
            return
        self._pending.add(key)
        self.counts["sent"] += 1
        self._jobs.put(("job", key, priority, spec_name, kind, case))

    def collect(self, store) -> None:
        """``store(key, result)`` for every result that has arrived, without waiting."""
        while self._process is not None:
            try:
                message = self._results.get_nowait()
            except queue.Empty:
                return
            self._take(message, store)

    def settle(self, key, store) -> None:
        """Make ``key`` the test process's own business: its result stored if it has arrived
        or is being computed (waited for), else its job withdrawn (the caller computes it)."""
        self.collect(store)
        if key not in self._pending:
            return
        if key != self._running:
            self.counts["withdrawn"] += 1
            self._pending.discard(key)
            self._jobs.put(("skip", key))
            return
        self.counts["waited"] += 1
        while key in self._pending and self._process is not None:
            try:
                message = self._results.get(timeout=WAIT_POLL_S)
            except queue.Empty:
                if not self._process.is_alive():
                    self.stop()
                continue
            self._take(message, store)

    def _take(self, message, store) -> None:
        status, key, *result = message
        if status == "start":
            self._running = key
            return
        self._pending.discard(key)
        if status == "done":
            self.counts["received"] += 1
            store(key, pickle.loads(result[0]))
        else:
            self.counts["failed"] += 1

    def stop(self) -> None:
        """End the prefetch process; jobs not done are dropped (their checks compute them)."""
        if self._process is None:
            return
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=10)
        self._process = None
        self._pending.clear()
        for channel in (self._jobs, self._results):
            channel.cancel_join_thread()  # never block on a message nobody will read
            channel.close()


def _next_messages(jobs, idle: bool) -> list:
    """Every message waiting on ``jobs``; when ``idle``, at least one (waited for)."""
    messages = [jobs.get()] if idle else []
    while True:
        try:
            messages.append(jobs.get_nowait())
        except queue.Empty:
            return messages


def serve(jobs, results) -> None:
    """The prefetch process: compute the jobs, the lowest priority number first (in the order
    sent among equals), skipping those withdrawn, and send each result back."""
    os.nice(NICENESS)
    from loss_reference.engine import EvaluationError

    from .references import compute_reference
    from .specs import SPECS

    waiting, withdrawn, order = [], set(), 0
    while True:
        for message in _next_messages(jobs, idle=not waiting):
            if message[0] == "skip":
                withdrawn.add(message[1])
                continue
            _, key, priority, spec_name, kind, case = message
            heapq.heappush(waiting, (priority, order, key, spec_name, kind, case))
            order += 1
        if not waiting:
            continue
        _, _, key, spec_name, kind, case = heapq.heappop(waiting)
        if key in withdrawn:
            withdrawn.discard(key)
            continue
        results.put(("start", key))
        try:
            try:
                result = compute_reference(SPECS[spec_name], case, kind)
            except EvaluationError as error:
                result = error
            # pickled here, not in the queue's feeder thread, so that a failure is "failed"
            results.put(("done", key, pickle.dumps(result, pickle.HIGHEST_PROTOCOL)))
        except Exception:  # computed again by the test process, which reports it there
            results.put(("failed", key))
