"""`batchbook demo`, the README's first command, works end to end, again and again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from batchbook.server.discovery import find_service, stop_service


def run_demo(state: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "batchbook", "demo", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_the_demo_runs_twice_and_its_reattach_line_works_in_a_new_process(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    first = run_demo(state)
    assert "submitted 9 inputs as array job" in first
    assert "ZeroDivisionError: division by zero" in first
    assert "8 estimates; 1 input failed" in first
    assert "pi ~ 3.1" in first
    assert find_service(state) is None  # it stops the service it started
    second = run_demo(state)  # the state dir and the first run are kept
    assert "8 estimates; 1 input failed" in second
    line = second.split("reattach from any Python, later:\n", 1)[1].splitlines()[0].strip()
    code = f"{line}; print(job.to_frame()['status'].value_counts().to_dict()); print(len(batch.jobs()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["{'SUCCEEDED': 8, 'FAILED': 1}", "2"]
    service = find_service(state)  # the reattach started it, and it keeps running
    assert service is not None
    try:
        run_demo(state)  # a demo beside a running service leaves it (and its files) alone
        assert find_service(state) == service
    finally:
        stop_service(state)
