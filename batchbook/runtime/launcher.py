"""The engine's side of the fork server: start attempts, signal them, read what happened."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from batchbook.engine import StartAttempt
from batchbook.home import private_dir, private_opener
from batchbook.runtime.containment import (
    cgroup_roots,
    descendants,
    kill_all,
    kill_cgroup,
    make_cgroup_root,
    remove_cgroup,
    wait_cgroup_empty,
    wait_gone,
)
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
        # The cgroup each fork server's attempts run under (None: no cgroups here), named
        # for this state dir and this process, so a later engine finds a dead one's.
        self._cgroup_prefix = "batchbook-" + hashlib.sha1(str(state_dir).encode()).hexdigest()[:10]
        self.cgroup: str | None = None
        self._starts = 0

    def start(self) -> None:
        self._starts += 1
        self.cgroup = make_cgroup_root(f"{self._cgroup_prefix}-{os.getpid()}-{self._starts}")
        if self.cgroup is not None:
            self._sweep_cgroups(self.cgroup)
        preload = ["--preload", ",".join(self.preload)] if self.preload else []
        cgroup = ["--cgroup", self.cgroup] if self.cgroup else []
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
                    *cgroup,
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

    def kill_attempts(self, leaders: set[int]) -> None:
        """Kill every process of every attempt the fork server started, and wait until they
        are gone: it died, and its attempts are about to be retried. ``leaders``: the first
        process of each (what there is to go by without cgroups)."""
        if self.cgroup is not None:
            kill_cgroup(self.cgroup)
            wait_cgroup_empty(self.cgroup, KILL_WAIT_SECONDS)
            remove_cgroup(self.cgroup)
        else:
            doomed = descendants(leaders)
            kill_all(doomed)
            wait_gone(doomed, KILL_WAIT_SECONDS)

    def _sweep_cgroups(self, mine: str) -> None:
        """Kill what is left in the cgroups of this state dir's engines that are gone."""
        for path in cgroup_roots(mine, self._cgroup_prefix + "-"):
            pid = int(path.rsplit("-", 2)[1])
            if path != mine and (pid != os.getpid() and not _alive(pid)):
                kill_cgroup(path)
                wait_cgroup_empty(path, KILL_WAIT_SECONDS)
                remove_cgroup(path)

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
        if self.cgroup is not None:  # the fork server killed its attempts: its cgroup goes
            kill_cgroup(self.cgroup)
            wait_cgroup_empty(self.cgroup, KILL_WAIT_SECONDS)
            remove_cgroup(self.cgroup)


KILL_WAIT_SECONDS = 5.0  # SIGKILL is not instant: how long to wait for the kernel to finish


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
