"""The fork server on its own, through its pipe protocol, in both ways it can see exits."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batchbook.runtime.frames import decode_frames, encode

DISPOSITIONS = (
    "import signal; print([str(signal.getsignal(s)) for s in "
    "(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM)])"
)


def run_all(
    tmp_path: Path, commands: list[list[str]], *flags: str, max_fds: int | None = None
) -> list[tuple[int, list[str]]]:
    """Start every command at once through a fresh fork server; (exit code, log lines) each."""

    def limit_fds() -> None:
        if max_fds is not None:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_fds, hard))

    server = subprocess.Popen(
        [sys.executable, "-m", "batchbook.runtime.forkserver", str(tmp_path / "scratch"), *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=limit_fds,
    )
    assert server.stdin is not None and server.stdout is not None
    logs = tmp_path / "logs"
    server.stdin.write(
        b"".join(
            encode(("start", f"t{i}", argv, {"AWS_BATCH_JOB_ID": f"j{i}"}, str(logs / f"t{i}")))
            for i, argv in enumerate(commands)
        )
    )
    server.stdin.flush()
    inbox, exited, started = bytearray(), dict[str, int](), set[str]()
    while len(exited) < len(commands):
        data = os.read(server.stdout.fileno(), 65536)
        assert data, "the fork server went away"
        inbox += data
        for message in decode_frames(inbox):
            if message[0] == "started":
                started.add(message[1])
            else:
                exited[message[1]] = message[2]
    server.stdin.close()
    assert server.wait(timeout=10) == 0
    assert started == {f"t{i}" for i in range(len(commands))}

    def lines(i: int) -> list[str]:
        path = logs / f"t{i}"
        if not path.exists():
            return []
        return [line.split("\t", 1)[1] for line in path.read_text().splitlines()]

    return [(exited[f"t{i}"], lines(i)) for i in range(len(commands))]


@pytest.mark.parametrize("flags", [(), ("--sigchld",)], ids=["pidfd", "sigchld"])
def test_children_start_as_fresh_interpreters_and_every_exit_is_seen(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    fresh = subprocess.run(
        [sys.executable, "-c", DISPOSITIONS], capture_output=True, text=True, check=True
    ).stdout.strip()
    commands: list[Any] = [["python", "-c", DISPOSITIONS]] * 3
    commands += [
        ["python", "-c", "import os, sys; sys.exit(int(os.environ['AWS_BATCH_JOB_ID'][1:]))"],
        # exec'd programs get SIGPIPE back at its default: `yes` dies of it, silently
        ["sh", "-c", "yes | head -n 1; echo done"],
    ]
    results = run_all(tmp_path, commands, *flags)
    for code, lines in results[:3]:
        assert (code, lines) == (0, [fresh])
    assert results[3] == (3, [])
    assert results[4] == (0, ["y", "done"])


def test_many_children_at_once_under_a_low_file_limit(tmp_path: Path) -> None:
    """Each running child takes two of the server's fds; it raises its own limit for them,
    and every child still gets the limit it was started with."""
    code = "import resource, time; time.sleep(0.5); print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    results = run_all(tmp_path, [["python", "-c", code]] * 60, max_fds=64)
    assert results == [(0, ["64"])] * 60


def test_a_request_that_cannot_start_fails_alone(tmp_path: Path) -> None:
    """A command no process can have (a NUL byte) fails its own attempt, exit 127 with a
    reason in its log; the fork server and the attempts beside it go on."""
    results = run_all(
        tmp_path,
        [
            ["/usr/bin/python3\x00", "-c", "pass"],  # refused while it is planned, here
            ["python", "-c", "print('beside it')"],
            ["sh\x00x"],  # refused by exec, in the child
        ],
    )
    assert results[0][0] == 127 and "CannotStartContainerError: ValueError" in results[0][1][0]
    assert results[1] == (0, ["beside it"])
    assert results[2][0] == 127 and "embedded null" in results[2][1][0]
