"""The engine's side of the fork server: start attempts, signal them, read what happened."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from batchbook.engine import StartAttempt
from batchbook.runtime.zygote import decode_frames, encode

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class Executor:
    """Owns the zygote process; never blocks on it (writes are buffered and flushed when it can take them)."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.logs_dir = state_dir / "logs"
        self.scratch_dir = state_dir / "scratch"
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self._out = bytearray()
        self._in = bytearray()

    def start(self) -> None:
        with open(self.state_dir / "zygote.log", "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "batchbook.runtime.zygote", str(self.scratch_dir)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=self.state_dir,
                start_new_session=True,
            )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        os.set_blocking(self.proc.stdin.fileno(), False)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._out.clear()
        self._in.clear()

    def fileno(self) -> int:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def write_fileno(self) -> int:
        assert self.proc is not None and self.proc.stdin is not None
        return self.proc.stdin.fileno()

    def launch(self, action: StartAttempt) -> None:
        log_path = str(self.logs_dir / action.log_stream)
        self._out += encode(("start", action.task_id, list(action.argv), action.env, log_path))

    def flush(self) -> bool:
        """Write what the zygote can take now; True while something is still waiting."""
        if self._out:
            try:
                written = os.write(self.write_fileno(), self._out)
                del self._out[:written]
            except (BlockingIOError, BrokenPipeError):
                pass
        return bool(self._out)

    def read(self) -> list[Any] | None:
        """Messages that arrived; None when the zygote has gone away."""
        try:
            data = os.read(self.fileno(), 1 << 20)
        except BlockingIOError:
            return []
        if not data:
            return None
        self._in += data
        return decode_frames(self._in)

    @staticmethod
    def signal_group(pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def stop(self) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the zygote kills its children and exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


def group_rss(pgids: set[int]) -> dict[int, int]:
    """Resident memory in bytes of every process in each of the given process groups."""
    totals = dict.fromkeys(pgids, 0)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pgid = int(fields[2])
        if pgid in totals:
            totals[pgid] += int(fields[21]) * PAGE_SIZE
    return totals


# The fork server reads the clock this soon after forking (1 s at 100 Hz).
STARTED_WITHIN_TICKS = 100


def kill_stale_group(pid: int | None, forked_at: int | None) -> bool:
    """Kill a process group left behind by a crashed engine, if its leader is still the same process.

    ``forked_at`` is the boot-time tick the fork server read just after forking it; a
    process with that pid that started at another time is someone else's.
    """
    from batchbook.runtime.zygote import start_ticks

    if pid is None or forked_at is None:
        return False
    started = start_ticks(pid)
    if started is None or not 0 <= forked_at - started <= STARTED_WITHIN_TICKS:
        return False
    Executor.signal_group(pid, signal.SIGKILL)
    return True
