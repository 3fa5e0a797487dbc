"""The speed test: every candidate timed side by side on each loss's ladder (with --speed).

Collected only when ``--speed`` is given (see ``pytest_ignore_collect`` in the plugin); one test
per timed loss, dtype and size, parametrized by the plugin. Figures go to the results, not into
assertions: the test fails only when timing itself breaks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from . import timing
from .recording import check_kind
from .session import reporting


@check_kind("speed")
def test_speed(conformance, spec, speed_dtype, size, request):
    """Time every candidate on one size of the loss's ladder, side by side (with --speed)."""
    candidates = [c for c in conformance.candidates
                  if spec.name in c.functions and not c.unavailable]
    if not candidates:
        pytest.skip("; ".join(c.unavailable for c in conformance.candidates if c.unavailable))
    threads = request.config.getoption("--speed-threads") or torch.get_num_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        bandwidth = timing.memory_bandwidth_gbs()
        rate = timing.compute_rate(spec, speed_dtype)
        rows = timing.time_size(candidates, spec, size, speed_dtype,
                                np.random.default_rng(conformance.seed),
                                bandwidth_gbs=bandwidth, elements_per_s=rate)
    finally:
        torch.set_num_threads(previous)
    state = reporting(request.config)
    state.record({"kind": "machine", "memory_bandwidth_gbs": bandwidth, "threads": threads,
                  "compute": {f"{spec.name}/{speed_dtype}": {"elements_per_s": rate,
                                                             "work": spec.speed.work}}})
    for row in rows:
        state.record({"kind": "speed", "threads": threads, **row})
