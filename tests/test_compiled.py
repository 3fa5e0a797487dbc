"""``--impl=torch-compile`` through the real command, on a narrow selection.

Every new graph costs inductor a C++ compile (about 15 s on the shared 2-core machine), so this
runs two fixed edge cases of ``l1_loss`` in float32: one without a weight, which conforms, and
one with a weight, which shows the deviation documented in conformance/deviations/compiled.py
(torch.compile drops l1_loss's weight): an xfail with that reason.
"""

from __future__ import annotations

from conftest import run_conformance

PASSING = "test_edge_value[torch-compile-l1_loss-float32-all-equal]"
DEVIATING = "test_edge_value[torch-compile-l1_loss-float32-zero-weights]"


def test_torch_compile_alias(tmp_path):
    run = run_conformance(tmp_path, "conformance", "--impl=torch-compile", "--loss=l1_loss",
                          "--dtype=float32", "--profile=quick", "--no-report",
                          "-k", "test_edge_value and (float32-all-equal or float32-zero-weights)")
    assert "candidate torch-compile: torch-compile [torch" in run.stdout, run
    assert set(run.outcomes) == {PASSING, DEVIATING}, run
    assert run.outcomes[PASSING][0] == "passed", run
    kind, message, text = run.outcomes[DEVIATING]
    assert kind == "xfailed" and run.returncode == 0, run
    assert "drops l1_loss's weight" in message + text, run
