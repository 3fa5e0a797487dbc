"""References computed ahead of need, on the core a serial run leaves idle.

A serial run keeps one core busy with the test process (drawing cases, computing references,
judging, reporting), while the candidate's worker computes only briefly per call: the second
core idles most of the run. Yet most of a check's own work is known long before the check runs:
the random cases of each loss and variant (hypothesis draws them from the seed alone) with
their references, the gradient references of those cases (the gradient check replays them),
and the value and gradient of every edge case (the edge tests run after the random ones). The
test process sends such jobs (``ahead.plan``) to a prefetch process, which does them in the
order the run will need them, at a lower scheduling priority than the test process and the
candidate's worker, and sends the results back: drawn cases to the run's replay cache, which
the random checks replay as they replay a sibling's, and references to ``references``' cache.

When a check needs a result the prefetch process has not reached, the test process does the
job itself and withdraws it; one the prefetch process is doing at that moment is waited for.
A result is the same wherever it is computed (the reference is exact and deterministic, the
cases depend on the seed alone), so prefetching changes the run's speed, never a verdict; a
failure met on a prefetched case is drawn afresh by hypothesis in the test process, to shrink
it, as for any replayed case. A job that fails in the prefetch
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
# Stages of a job's priority (stage, order in the run), the lowest done first: the random
# checks' cases and references, their gradients, the edge cases' values, their gradients, the
# property checks' pairs and references.
DRAWN, GRADIENTS, EDGE_VALUES, EDGE_GRADIENTS, PROPERTIES = 0, 1, 2, 3, 4
WAIT_POLL_S = 1.0  # while waiting for a job in progress: how often to check the process lives

_STORES = {}  # job kind -> store(key, result) for its results
_ALLOWED = False
_ACTIVE = None  # the Prefetcher, once allowed and asked for a job


def keep_results(kind: str, store) -> None:
    """Results of jobs of ``kind`` go to ``store(key, result)``."""
    _STORES[kind] = store


def allow(allowed: bool) -> None:
    """Turn prefetching on (its process starts at the first ``ask``) or off (its process
    stopped; jobs not yet done are done by the checks that need them)."""
    global _ALLOWED, _ACTIVE
    _ALLOWED = allowed
    if not allowed and _ACTIVE is not None:
        _ACTIVE.stop()
        _ACTIVE = None


def allowed() -> bool:
    """Whether prefetching is on."""
    return _ALLOWED


def active():
    """The Prefetcher while prefetching is on and has been asked for a job, else None."""
    return _ACTIVE


def ask(key, priority: tuple, kind: str, spec_name: str, payload) -> None:
    """Have the job done ahead while prefetching is on (nothing otherwise): ``kind`` "value"
    or "gradient" (the reference of the Case ``payload``), "draw" (``payload`` (variant,
    examples, seed, gradients): the member's random cases) or "pairs" (``payload`` (group,
    property name, examples, seed): a property check's random pairs); see ``draw_job``."""
    global _ACTIVE
    if not _ALLOWED:
        return
    if _ACTIVE is None:
        _ACTIVE = Prefetcher()
    _ACTIVE.collect()
    _ACTIVE.submit(key, priority, kind, spec_name, payload)


def settle(key) -> None:
    """Make ``key`` the caller's business: its result stored if it has arrived or is being
    worked on (waited for), else its job withdrawn (the caller does it)."""
    if _ACTIVE is not None:
        _ACTIVE.settle(key)


class Prefetcher:
    """The test process's end of one prefetch process (``serve``)."""

    def __init__(self):
        context = worker_context()
        self._jobs, self._results = context.Queue(), context.Queue()
        self._process = context.Process(target=serve, args=(self._jobs, self._results),
                                        name="conformance-prefetch", daemon=True)
        with main_module_left_out():
            self._process.start()
        self._pending = set()  # keys sent (or queued there) and neither answered nor withdrawn
        self._running = None  # the key the prefetch process said it started last
        # jobs sent; results received; jobs waited for, withdrawn, failed in the process
        self.counts = {"sent": 0, "received": 0, "waited": 0, "withdrawn": 0, "failed": 0}

    def submit(self, key, priority: tuple, kind: str, spec_name: str, payload) -> None:
        """Send one job (see ``ask``); a key already pending is ignored."""
        if key in self._pending or self._process is None:
            return
        self._pending.add(key)
        self.counts["sent"] += 1
        self._jobs.put(("job", key, priority, kind, spec_name, payload))

    def collect(self) -> None:
        """Store every result that has arrived, without waiting."""
        while self._process is not None:
            try:
                message = self._results.get_nowait()
            except queue.Empty:
                return
            self._take(message)

    def settle(self, key) -> None:
        """See the module's ``settle``."""
        self.collect()
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
            self._take(message)

    def _take(self, message) -> None:
        status, key, *rest = message
        if status == "start":
            self._running = key
        elif status == "queued":  # jobs the process added itself (a drawn member's references)
            self._pending.update(key)
        elif status == "done":
            self._pending.discard(key)
            self.counts["received"] += 1
            kind, pickled = rest
            _STORES[kind](key, pickle.loads(pickled))
        else:
            self._pending.discard(key)
            self.counts["failed"] += 1

    def stop(self) -> None:
        """End the prefetch process; jobs not done are dropped (their checks do them)."""
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


def draw_job(spec, kind: str, payload, priority: tuple) -> tuple:
    """A "draw" or "pairs" job: the random cases (or pairs) as the check would draw them, and
    the reference jobs that follow from them: (drawn, [(key, priority, kind, case)])."""
    from .cases import draw_cases
    from .properties import draw_pairs, properties_of
    from .references import fingerprint

    if kind == "pairs":
        group, prop_name, examples, seed = payload
        prop = next(p for p in properties_of(spec) if p.name == prop_name)
        pairs = draw_pairs(spec, group, prop, examples, seed)
        cases = [case for pair in pairs for case in (pair.a, pair.b)]
        return pairs, [(fingerprint(spec, case, "value"), priority, "value", case)
                       for case in cases]
    variant, examples, seed, gradients = payload
    cases = draw_cases(spec, variant, examples, seed)
    follow = [(fingerprint(spec, case, "value"), priority, "value", case) for case in cases]
    if gradients:
        follow += [(fingerprint(spec, case, "gradient"), (GRADIENTS,) + priority[1:],
                    "gradient", case) for case in cases if spec.differentiable_args(case)]
    return cases, follow


def serve(jobs, results) -> None:
    """The prefetch process: do the jobs, the lowest priority first (in the order sent among
    equals), skipping those withdrawn, and send each result back."""
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
            _, key, priority, kind, spec_name, payload = message
            heapq.heappush(waiting, (priority, order, key, kind, spec_name, payload))
            order += 1
        if not waiting:
            continue
        priority, _, key, kind, spec_name, payload = heapq.heappop(waiting)
        if key in withdrawn:
            withdrawn.discard(key)
            continue
        results.put(("start", key))
        try:
            spec = SPECS[spec_name]
            if kind in ("draw", "pairs"):
                result, follow = draw_job(spec, kind, payload, priority)
                results.put(("queued", [job[0] for job in follow]))
                for job_key, job_priority, job_kind, case in follow:
                    heapq.heappush(waiting, (job_priority, order, job_key, job_kind, spec_name,
                                             case))
                    order += 1
            else:
                try:
                    result = compute_reference(spec, payload, kind)
                except EvaluationError as error:
                    result = error
            # pickled here, not in the queue's feeder thread, so that a failure is "failed"
            results.put(("done", key, kind, pickle.dumps(result, pickle.HIGHEST_PROTOCOL)))
        except Exception:  # done again by the test process, which reports it there
            results.put(("failed", key))
