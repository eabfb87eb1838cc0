"""A full disk wedges nothing: while the state dir's disk is full, changes answer a clear
503, no thread dies, an attempt's log stops growing and later says what it lost; once
there is room again everything goes on by itself, without a restart. On a small tmpfs the
test mounts itself (as root, as CI runs)."""

from __future__ import annotations

import errno
import os
import select
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError as BotoError
from conftest import checked_client, make_jobdef, make_queue, start, wait_jobs

from batchbook.server.discovery import stop_service

TICKER = textwrap.dedent(
    """
    import os, time
    fifo = open(os.environ["FIFO"], "w")
    i = 0
    while True:
        i += 1
        print("tick", i, "." * 200, flush=True)  # 50 ticks fill more than a page
        fifo.write(f"{i}\\n")
        fifo.flush()
        time.sleep(0.005)
    """
)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    stop_service(mount / "state")
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the disk has no byte left."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break


class Ticks:
    """The ticker's counter, read from its fifo (a pipe takes no room on the disk)."""

    def __init__(self, path: Path):
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.last = 0
        self.buf = b""

    def past(self, tick: int, timeout: float = 60) -> int:
        """Wait (select, not sleep) until the ticker has counted past ``tick``."""
        deadline = time.monotonic() + timeout
        while self.last <= tick:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"the ticker stopped at {self.last}"
            self.buf += os.read(self.fd, 65536)
            *lines, self.buf = self.buf.split(b"\n")
            if lines:
                self.last = int(lines[-1])
        return self.last


def log_of(logs: Any, stream: str) -> list[str]:
    events, token = [], None
    while True:
        page = logs.get_log_events(
            logGroupName="/aws/batch/job",
            logStreamName=stream,
            startFromHead=True,
            **({"nextToken": token} if token else {}),
        )
        events += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            return events
        token = page["nextForwardToken"]


def stream_reaching(logs: Any, stream: str, tick: int, timeout: float = 30) -> list[str]:
    """The stream's lines once they hold ``tick`` (read as a log viewer does, page by page,
    again until it is there: the fork server writes what it reads as it reads it)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = log_of(logs, stream)
        if any(line.startswith(f"tick {tick} ") for line in lines):
            return lines
        assert time.monotonic() < deadline, f"tick {tick} never reached the stream"
        time.sleep(0.05)


def test_a_full_disk_refuses_changes_and_everything_resumes_once_there_is_room(
    disk: Path,
) -> None:
    service = start(disk / "state")
    batch = checked_client(service, retries={"max_attempts": 1})  # see each 503 as it comes
    logs = checked_client(service, "logs")
    make_queue(batch)
    make_jobdef(batch, "quick")
    fifo = disk / "ticks.fifo"
    os.mkfifo(fifo)
    batch.register_job_definition(
        jobDefinitionName="ticker",
        type="container",
        containerProperties={
            "image": "python:3.11",
            "command": ["python", "-c", TICKER],
            "environment": [{"name": "FIFO", "value": str(fifo)}],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "128"},
            ],
        },
    )
    ticker = batch.submit_job(jobName="ticker", jobQueue="q", jobDefinition="ticker")["jobId"]
    ticks = Ticks(fifo)
    ticks.past(3)

    fill(disk / "filler")
    full_from = ticks.past(0)
    with pytest.raises(BotoError) as refused:
        batch.submit_job(jobName="j", jobQueue="q", jobDefinition="quick")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert "the disk is full" in str(refused.value)
    assert batch.describe_jobs(jobs=[ticker])["jobs"][0]["status"] == "RUNNING"  # reads work
    full_until = ticks.past(full_from + 50)  # 50 ticks printed while there was no room

    (disk / "filler").unlink()
    quick = batch.submit_job(jobName="j", jobQueue="q", jobDefinition="quick")["jobId"]
    assert wait_jobs(batch, [quick])[0]["status"] == "SUCCEEDED"  # no restart needed
    after = ticks.past(full_until + 5)
    stream = batch.describe_jobs(jobs=[ticker])["jobs"][0]["container"]["logStreamName"]
    lines = stream_reaching(logs, stream, after)  # it grows again
    notes = [line for line in lines if "were dropped: the disk was full" in line]
    assert len(notes) == 1
    numbers = [int(line.split()[1]) for line in lines if line.startswith("tick ")]
    missing = set(range(full_from + 1, full_until + 1)) - set(numbers)
    assert missing, "the ticks printed while the disk was full are not in the stream"
    batch.terminate_job(jobId=ticker, reason="done")
    assert wait_jobs(batch, [ticker])[0]["status"] == "FAILED"
    stop_service(disk / "state")  # what happened meanwhile was saved
    batch = checked_client(start(disk / "state"))
    statuses = {j["jobId"]: j["status"] for j in batch.describe_jobs(jobs=[ticker, quick])["jobs"]}
    assert statuses == {ticker: "FAILED", quick: "SUCCEEDED"}
