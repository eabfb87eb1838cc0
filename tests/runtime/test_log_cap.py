"""An attempt's log stream holds at most --max-log-stream-mib: past it, one note, the rest
dropped, and the attempt is not held up by it."""

from __future__ import annotations

from pathlib import Path

from batchbook.runtime.local import LocalBatch
from tests.runtime.conftest import log_lines, run_python, setup_local


def test_a_stream_past_its_cap_ends_with_a_note_and_the_job_goes_on(tmp_path: Path) -> None:
    lb = LocalBatch(tmp_path / "state", max_log_stream_mib=1)
    try:
        setup_local(lb)
        code = "import sys\nfor i in range(40_000):\n    print('x' * 60, i)\nprint('done', file=sys.stderr)"
        detail = run_python(lb, code)  # 2.6 MB of output
        assert detail["status"] == "SUCCEEDED"
        stream = detail["attempts"][0]["container"]["logStreamName"]
        lines = [message for _, message in lb.log_events(stream, 0, 100_000)]
        assert lb.log_path(stream).stat().st_size <= 1 << 20
        assert lines[-1].startswith("[batchbook] this log stream reached its cap of 1 MiB")
        assert lines[0] == "x" * 60 + " 0" and 10_000 < len(lines) < 40_000
        small = run_python(lb, "print('short')")  # another attempt's stream has its own cap
        assert log_lines(lb, small) == ["short"]
    finally:
        lb.close()
