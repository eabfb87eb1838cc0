"""The engine's side of the fork server: start attempts, signal them, read what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from batchbook.engine import StartAttempt
from batchbook.home import private_dir, private_opener
from batchbook.runtime.frames import decode_frames, encode


class Launcher:
    """Owns the fork server process; never blocks on it (writes are buffered and flushed when
    it can take them). ``preload``: modules the fork server loads before the first ``python
    -m`` start, so every attempt of that wave forks with them warm."""

    def __init__(
        self, state_dir: Path, preload: tuple[str, ...] = (), max_log_stream_mib: int = 1024
    ):
        self.state_dir = state_dir
        self.preload = preload
        self.max_log_stream_mib = max_log_stream_mib
        self.logs_dir = state_dir / "logs"
        self.scratch_dir = state_dir / "scratch"
        private_dir(self.scratch_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        self._out = bytearray()
        self._in = bytearray()

    def start(self) -> None:
        preload = ["--preload", ",".join(self.preload)] if self.preload else []
        with open(self.state_dir / "forkserver.log", "ab", opener=private_opener) as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "batchbook.runtime.forkserver",
                    str(self.scratch_dir),
                    *preload,
                    "--max-log-stream-mib",
                    str(self.max_log_stream_mib),
                ],
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
        """Write what the fork server can take now; True while something is still waiting."""
        if self._out:
            try:
                written = os.write(self.write_fileno(), self._out)
                del self._out[:written]
            except (BlockingIOError, BrokenPipeError):
                pass
        return bool(self._out)

    def read(self) -> list[Any] | None:
        """Messages that arrived; None when the fork server has gone away."""
        try:
            data = os.read(self.fileno(), 1 << 20)
        except BlockingIOError:
            return []
        if not data:
            return None
        self._in += data
        return decode_frames(self._in)

    def stop(self) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the fork server kills its children and exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
