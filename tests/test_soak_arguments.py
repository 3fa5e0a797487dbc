"""benchmarks/soak.py refuses a seed range that runs nothing, instead of printing "no
failures" having run no seed (``--first-seed`` at or past both profiles' seed counts)."""

import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


def test_an_empty_seed_range_is_an_error_that_says_how_to_fix_it():
    result = subprocess.run([sys.executable, str(SOAK), "--first-seed", "452"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no failures" not in result.stdout
    assert "no seeds to run" in result.stderr
    assert "--quick-seeds 482" in result.stderr
