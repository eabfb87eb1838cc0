"""`batchbook demo`, the README's first command, works end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_a_map_and_shows_the_failing_input(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "batchbook", "demo", "--state-dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "submitted 9 inputs as array job" in out.stdout
    assert "ZeroDivisionError: division by zero" in out.stdout
    assert "8 estimates; 1 inputs failed" in out.stdout
    assert "pi ~ 3.1" in out.stdout
