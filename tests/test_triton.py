"""The Triton example candidate (examples/triton_multilabel.py) through the real command.

Runs on the CPU in Triton's interpreter (``TRITON_INTERPRET=1``), which is slow (seconds per
check on the shared 2-core machine), so each run is narrowed to a few checks; the whole
``--loss multilabel_soft_margin_loss --profile=quick`` run and its results are in
examples/README.md. Skipped where triton is not installed.
"""

from __future__ import annotations

import pytest
from conftest import REPO, run_conformance

pytest.importorskip("triton")

EXAMPLE = REPO / "examples" / "triton_multilabel.py"


def _run(cwd, *args):
    return run_conformance(cwd, "conformance", f"--impl={EXAMPLE}",
                           "--loss=multilabel_soft_margin_loss", "--profile=quick", "--no-report",
                           "-q", "-rA", *args)


@pytest.mark.parametrize("dtype, selection, expected", [
    # forward and all three gradients (input, target, weight), random cases of every
    # reduction, float32
    ("float32", "test_value or test_gradient", 2),
    # fixed edge cases (empty batch, saturated logits, unbatched), each under every reduction,
    # and the invalid calls, rejected before any kernel runs
    ("float32", "test_rejects_invalid or (test_edge_gradient and "
                "(float32-empty-batch or float32-saturated or float32-unbatched))", 7),
    # half precision works in the interpreter too (upcast on load, one rounding at the end);
    # saturated-agree has subnormal bfloat16 gradients, which the interpreter's own float32 ->
    # bfloat16 conversion gets wrong (the kernel stores float32 there; see the example)
    ("bfloat16", "test_gradient or test_edge_gradient and saturated-agree", 2),
])
def test_triton_kernel_conforms(tmp_path, monkeypatch, dtype, selection, expected):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    done = _run(tmp_path, f"--dtype={dtype}", "-k", selection)
    report = str(done)
    assert done.returncode == 0, report
    passed = [line for line in done.stdout.splitlines() if line.startswith("PASSED ")]
    assert passed, report
    assert all("triton_multilabel-multilabel_soft_margin_loss" in line for line in passed), report
    if expected is not None:
        assert len(passed) == expected, report
    assert "FAILED" not in done.stdout and "SKIPPED" not in done.stdout, report
