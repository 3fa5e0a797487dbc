"""The worker process of an isolated candidate (see conformance/isolation.py).

``main(conn, impl, device, memory_limit, threads, environ)`` runs in the worker: it takes the
test process's environment, loads the candidate (with ``threads`` torch threads), answers
"ready" on the connection ``conn``, then serves calls until the connection closes:
each request is (spec name, Case, with_grad, options), each answer (status, payload, recycle,
seconds) where status is "ok" (payload: the Call), the name of a suite exception the call raised
(ForwardOnly, DtypeRefused, WrongOutput; payload: its message) or "raised" (payload: the
candidate's exception type name, message and traceback). ``recycle`` asks the test process to
replace this worker, whose memory has passed MEMORY_LIMIT bytes; ``seconds`` is how long the
candidate's call took in the worker (the test process computes the reference meanwhile, so its
own clock cannot tell).
"""

from __future__ import annotations

import os
import time
import traceback


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def serve(conn, candidate, memory_limit: int):
    """Answer calls until the test process closes the connection."""
    from .frameworks import DtypeRefused, ForwardOnly, WrongOutput
    from .isolation import resident_bytes
    from .specs import SPECS

    while True:
        try:
            spec_name, case, with_grad, options = conn.recv()
        except (EOFError, OSError):
            return
        started = time.monotonic()
        try:
            call = candidate.call_here(SPECS[spec_name], case, with_grad, options)
            status, payload = "ok", call
        except (ForwardOnly, DtypeRefused, WrongOutput) as error:
            status, payload = type(error).__name__, str(error)
        except BaseException as error:  # noqa: B036 (SystemExit from a candidate is a finding)
            refusal = candidate.framework.refusal(error)
            if refusal is not None:
                status, payload = "DtypeRefused", str(refusal)
            else:
                status = "raised"
                payload = (type(error).__name__, _first_line(error),
                           "".join(traceback.format_exception(error))[-4000:])
        seconds = time.monotonic() - started
        conn.send((status, payload, resident_bytes() > memory_limit, seconds))


def set_threads(threads: int):
    """Give torch ``threads`` intra-op threads (checks call candidates on small tensors, where
    a pool of threads on a busy machine only waits: 11 ms instead of 4 us per call)."""
    import torch

    torch.set_num_threads(threads)


def main(conn, impl: str, device: str, memory_limit: int, threads: int,
         environ: dict) -> None:
    """Load the candidate ``impl`` and serve its calls on ``conn`` (the worker's target)."""
    os.environ.clear()
    os.environ.update(environ)  # the fork server's environment may be older than the run's
    set_threads(threads)
    from .candidates import CandidateError, load_candidate

    try:
        candidate = load_candidate(impl, device=device)
    except CandidateError as error:
        conn.send(("failed", str(error), False))
        return
    candidate.framework.warm_up()  # one-time start-up costs count against loading, not a call
    conn.send(("ready", "", False))
    serve(conn, candidate, memory_limit)
