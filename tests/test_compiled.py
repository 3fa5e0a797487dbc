"""``--impl=torch-compile`` through the real command, on a narrow selection.

Every new graph costs inductor a C++ compile (about 15 s on the shared 2-core machine), so this
runs two fixed edge cases of ``l1_loss`` in float32: one without a weight, which conforms, and
one with a weight, which shows the deviation documented in conformance/deviations/compiled.py
(torch.compile drops l1_loss's weight): an xfail with that reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

PASSING = "test_edge_value[torch-compile-l1_loss-float32-all-equal]"
DEVIATING = "test_edge_value[torch-compile-l1_loss-float32-zero-weights]"


def _outcomes(junit: Path) -> dict:
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        children = [c for c in case if c.tag in ("failure", "error", "skipped")]
        if not children:
            outcomes[case.get("name")] = ("passed", "")
        else:
            child = children[0]
            kind = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
            if kind == "skipped" and child.get("type") == "pytest.xfail":
                kind = "xfailed"
            outcomes[case.get("name")] = (kind, (child.get("message") or "") + (child.text or ""))
    return outcomes


def test_torch_compile_alias(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH")}
    env.update(OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", COLUMNS="200")
    junit = tmp_path / "junit.xml"
    argv = [sys.executable, "-m", "pytest", "conformance", "--impl=torch-compile",
            "--loss=l1_loss", "--dtype=float32", "--profile=quick", "--no-report",
            "-p", "no:cacheprovider", f"--junitxml={junit}",
            "-k", "test_edge_value and (float32-all-equal or float32-zero-weights)"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    report = f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert "candidate torch-compile: torch-compile [torch" in done.stdout, report
    outcomes = _outcomes(junit)
    assert set(outcomes) == {PASSING, DEVIATING}, report
    assert outcomes[PASSING][0] == "passed", report
    kind, text = outcomes[DEVIATING]
    assert kind == "xfailed" and done.returncode == 0, report
    assert "drops l1_loss's weight" in text, report
