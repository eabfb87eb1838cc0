"""Nothing accepted is lost: failures of the machine never count against ``retries=``, a
graceful stop re-queues what it interrupted, and each input runs at most ``retries + 1``
times whatever happens to the attempts around it. Real service, real fork server, kill -9."""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import batchbook as batch
from batchbook.functions.backend import Backend
from batchbook.server.discovery import stop_service
from batchbook.vocabulary import HOST_LOST
from tests.functions.conftest import calls, mark
from tests.server.conftest import start


@pytest.fixture
def own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Backend, Path]]:
    """A service of this test's own (it is killed and stopped), and a folder for its marks."""
    state = tmp_path / "state"
    start(state)
    seen = tmp_path / "seen"
    seen.mkdir()
    fifo = tmp_path / "pid.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("TEST_SEEN", str(seen))
    yield batch.use(state_dir=state), tmp_path
    stop_service(state)


def held_once(x: int) -> int:
    """Input 0 says its pid through the fifo and then waits, the first time it runs."""
    seen, fifo = os.environ["TEST_SEEN"], os.environ["TEST_FIFO"]
    mark(seen, x)
    first = os.path.join(seen, "held")
    if x == 0 and not os.path.exists(first):
        open(first, "w").close()
        with open(fifo, "w") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(3600)  # until the test takes the machine away under it
    return x * 10


def always_fails(x: int) -> int:
    mark(os.environ["TEST_SEEN"], x)
    raise ValueError(f"no {x}")


def worker_pid(fifo: Path, timeout: float = 60) -> int:
    """The pid the held input writes into the fifo (waited for with select, not a sleep)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    data = b""
    try:
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError("the held input never said its pid")
            data += os.read(fd, 64)
    finally:
        os.close(fd)
    return int(data)


def run_held(backend: Backend, tmp: Path, **options: object) -> tuple[batch.MapJob, int]:
    env = {"TEST_SEEN": str(tmp / "seen"), "TEST_FIFO": str(tmp / "pid.fifo")}
    job = batch.map(held_once, range(6), chunksize=3, env=env, **options)  # type: ignore[arg-type]
    return job, worker_pid(tmp / "pid.fifo")


def test_a_killed_fork_server_costs_no_retry(own: tuple[Backend, Path]) -> None:
    backend, tmp = own
    job, pid = run_held(backend, tmp)  # retries=0: no failure of an input is retried
    fork_server = psutil.Process(pid).ppid()
    os.kill(fork_server, signal.SIGKILL)
    frame = job.wait(timeout=120, progress=False).to_frame()
    assert frame["status"].tolist() == ["SUCCEEDED"] * 6
    assert frame["result"].tolist() == [0, 10, 20, 30, 40, 50]
    [chunk] = backend.describe([job.chunk_job_id(0)])
    assert chunk["attempts"][0]["statusReason"] == HOST_LOST
    assert len(chunk["attempts"]) == 2
    runs = calls(tmp / "seen")
    assert runs["0"] == 2  # its first run was killed with the fork server: it ran again
    assert all(1 <= runs[str(i)] <= 2 for i in range(1, 6))  # the others: again if in flight


def test_a_killed_service_costs_no_retry(own: tuple[Backend, Path]) -> None:
    backend, tmp = own
    job, _ = run_held(backend, tmp)
    service = psutil.Process(json_pid(tmp / "state"))
    service.kill()  # kill -9 of `batchbook serve`: its fork server kills what it started
    service.wait(30)
    frame = job.wait(timeout=120, progress=False).to_frame()  # the client starts a new one
    assert frame["status"].tolist() == ["SUCCEEDED"] * 6
    [chunk] = backend.describe([job.chunk_job_id(0)])
    assert chunk["attempts"][0]["statusReason"] == HOST_LOST


def json_pid(state: Path) -> int:
    import json

    return int(json.loads((state / "service.json").read_text())["pid"])


def test_a_graceful_stop_requeues_what_it_interrupted(own: tuple[Backend, Path]) -> None:
    backend, tmp = own
    job, _ = run_held(backend, tmp)
    state = tmp / "state"
    stop_service(state)  # batchbook stop, while input 0 runs
    start(state)  # the next service on the state dir
    frame = job.wait(timeout=120, progress=False).to_frame()
    assert frame["status"].tolist() == ["SUCCEEDED"] * 6
    [chunk] = backend.describe([job.chunk_job_id(0)])
    assert len(chunk["attempts"]) == 1  # the interrupted attempt was not spent
    assert chunk["attempts"][0]["container"]["exitCode"] == 0


def test_each_input_runs_retries_plus_one_times(own: tuple[Backend, Path]) -> None:
    backend, tmp = own
    job = batch.map(
        always_fails, range(2), chunksize=2, retries=2, env={"TEST_SEEN": str(tmp / "seen")}
    )
    frame = job.wait(timeout=120, progress=False).to_frame()
    assert frame["status"].tolist() == ["FAILED", "FAILED"]
    assert calls(tmp / "seen") == {"0": 3, "1": 3}
    [detail] = backend.describe([job.job_id])
    # 3 of the 6 attempts Batch allows: the third ended the job (the worker's final exit)
    assert [a["container"]["exitCode"] for a in detail["attempts"]] == [1, 1, 2]
    assert detail["retryStrategy"]["attempts"] == 6


KILLED_AFTER_SUBMIT = """
import os, signal, sys
import batchbook as batch
backend = batch.use(state_dir=sys.argv[1])
# kill -9 of this client the moment SubmitJob has answered, before the ledger knows the job
backend.batch.meta.events.register(
    "after-call.batch.SubmitJob", lambda **_: os.kill(os.getpid(), signal.SIGKILL)
)
batch.map(abs, [-1, -2, -3], name="orphan")
"""


def test_a_client_killed_after_submit_leaves_a_run_that_attaches(
    own: tuple[Backend, Path],
) -> None:
    import subprocess
    import sys

    _, tmp = own
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_SUBMIT, str(tmp / "state")], timeout=120
    )
    assert killed.returncode == -signal.SIGKILL
    listed = batch.jobs()
    assert listed["name"].tolist() == ["orphan"] and listed["job_id"][0]  # found on Batch
    job = batch.attach("orphan")
    assert job.wait(timeout=60, progress=False).results() == [1, 2, 3]
    assert batch.attach(job.job_id).id == job.id  # settled: its job id is recorded


def key_or_flaky(x: int) -> int:
    mark(os.environ["TEST_SEEN"], x)
    if x == 0:
        raise KeyError("not one retry_on is for")
    if os.environ["AWS_BATCH_JOB_ATTEMPT"] == "1":
        raise ConnectionResetError("a subclass of ConnectionError: retried")
    return x


def test_a_failure_no_retry_is_for_does_not_run_again_with_its_chunk(
    own: tuple[Backend, Path],
) -> None:
    _, tmp = own
    job = batch.map(
        key_or_flaky,
        [0, 1],
        chunksize=2,
        retries=2,
        retry_on=[ConnectionError],
        env={"TEST_SEEN": str(tmp / "seen")},
    )
    frame = job.wait(timeout=120, progress=False).to_frame()
    assert frame["status"].tolist() == ["FAILED", "SUCCEEDED"]
    assert calls(tmp / "seen") == {"0": 1, "1": 2}  # the chunk ran twice, input 0 once
