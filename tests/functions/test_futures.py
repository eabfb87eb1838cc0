"""batch.submit / batch.Executor as concurrent.futures, attach after a kernel restart, pre-flight."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import batchbook as batch
from batchbook import interpreter
from batchbook.errors import EnvironmentMismatch, RemoteError
from batchbook.functions import environment
from batchbook.functions.backend import Backend
from batchbook.server.discovery import stop_service
from tests.server.conftest import make_queue, start

ROOT = Path(__file__).resolve().parents[2]


def add(a: int, b: int = 0, *, scale: int = 1) -> int:
    return (a + b) * scale


def explode(x: int) -> int:
    raise ArithmeticError(f"boom {x}")


def test_submit_returns_a_future(backend: Backend) -> None:
    future = batch.submit(add, 2, b=3, scale=10)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=30) == 50
    assert future.done() and not future.cancelled() and future.exception() is None
    failing = batch.submit(explode, 4)
    error = failing.exception(timeout=30)
    assert isinstance(error, RemoteError) and "boom 4" in str(error)
    with pytest.raises(RemoteError):
        failing.result()


def test_executor_is_a_drop_in_concurrent_futures_executor(backend: Backend) -> None:
    seen: list[int] = []
    with batch.Executor(memory="256 MiB") as pool:
        futures = [pool.submit(add, i, 1) for i in range(6)]
        futures[0].add_done_callback(lambda f: seen.append(f.result()))
        done = [f.result() for f in concurrent.futures.as_completed(futures, timeout=60)]
        assert sorted(done) == [1, 2, 3, 4, 5, 6]
        assert list(pool.map(add, range(5), range(5))) == [0, 2, 4, 6, 8]
        assert list(pool.map(add, [1, 2, 3], chunksize=2)) == [1, 2, 3]
        waited = concurrent.futures.wait(futures, timeout=30)
        assert len(waited.done) == 6 and not waited.not_done
    assert seen == [1]
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(add, 1)


def test_a_future_that_has_not_started_can_be_cancelled(backend: Backend) -> None:
    make_queue(backend.batch, "stalled", max_vcpus=1)
    backend.batch.update_compute_environment(computeEnvironment="stalled-ce", state="DISABLED")
    pool = batch.Executor(queue="stalled")
    future = pool.submit(add, 1)
    called: list[bool] = []
    future.add_done_callback(lambda f: called.append(f.cancelled()))
    assert future.cancel() is True
    assert future.cancelled() and called == [True]
    with pytest.raises(concurrent.futures.CancelledError):
        future.result()
    (detail,) = backend.describe([future.job_id])
    assert detail["status"] == "FAILED" and detail["isCancelled"]
    pool.shutdown(wait=False)


def slow_square(x: int) -> int:
    time.sleep(0.3)
    return x * x


def test_attach_from_a_new_process_after_a_kernel_restart(backend: Backend) -> None:
    state = backend.service.state_dir
    first = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(
            """
            import sys
            import batchbook as batch
            from tests.functions.test_futures import slow_square
            batch.use(state_dir=sys.argv[1])
            job = batch.map(slow_square, range(8), name="survives-restart", chunksize=2)
            print(job.id)
            """
        ), str(state)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.strip()
    second = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(
            """
            import json, sys
            import batchbook as batch
            batch.use(state_dir=sys.argv[1])
            job = batch.attach("survives-restart")
            ledger = batch.jobs()
            print(json.dumps({"id": job.id, "results": job.results(),
                              "listed": ledger["name"].tolist()}))
            """
        ), str(state)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    seen = json.loads(second.stdout)
    assert seen["id"] == run_id
    assert seen["results"] == [x * x for x in range(8)]
    assert "survives-restart" in seen["listed"]


def make_dist(folder: Path, version: str) -> None:
    """An installed-looking package ``bbprobe`` of ``version`` in ``folder``."""
    (folder / "bbprobe").mkdir(parents=True)
    (folder / "bbprobe" / "__init__.py").write_text(f"VERSION = {version!r}\n")
    info = folder / f"bbprobe-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: bbprobe\nVersion: {version}\n")
    (info / "top_level.txt").write_text("bbprobe\n")


def test_preflight_names_what_differs_on_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = tmp_path / "here" / "site-packages", tmp_path / "there" / "site-packages"
    make_dist(here, "1.0")
    make_dist(there, "2.0")
    monkeypatch.setenv("PYTHONPATH", str(there))  # the worker's environment has 2.0
    state = tmp_path / "state"
    start(state)
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.syspath_prepend(str(here))  # this process has 1.0
    interpreter._distributions.cache_clear()
    try:
        import bbprobe  # type: ignore[import-not-found]

        def uses_probe(x: int) -> str:
            return bbprobe.VERSION * x

        assert "bbprobe" in environment.modules_used(uses_probe)
        other = batch.use(state_dir=state)
        with pytest.raises(
            EnvironmentMismatch, match=r"module bbprobe is 2\.0 on the worker, 1\.0 here"
        ):
            batch.map(uses_probe, [1, 2])
        assert batch.jobs(other).empty  # nothing was submitted, and no probe job ran either
        assert not other.batch.list_jobs(jobQueue="batchbook", jobStatus="SUCCEEDED")[
            "jobSummaryList"
        ]
        assert batch.map(len, ["ab", "c"]).results() == [2, 1]  # no bbprobe: no mismatch
    finally:
        sys.modules.pop("bbprobe", None)
        interpreter._distributions.cache_clear()
        stop_service(state)


def test_the_worker_checks_again_when_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = tmp_path / "here" / "site-packages", tmp_path / "there" / "site-packages"
    make_dist(here, "1.0")
    make_dist(there, "2.0")
    state = tmp_path / "state"
    monkeypatch.setenv("PYTHONPATH", str(here))
    start(state)  # the worker has 1.0, as this process will: the check before submitting passes
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.syspath_prepend(str(here))
    interpreter._distributions.cache_clear()
    try:
        import bbprobe

        def uses_probe(x: int) -> str:
            return bbprobe.VERSION * x

        batch.use(state_dir=state)
        assert batch.map(uses_probe, [1]).results() == ["1.0"]
        stop_service(state)  # the service comes back in another environment: 2.0
        monkeypatch.setenv("PYTHONPATH", str(there))
        start(state)
        monkeypatch.delenv("PYTHONPATH")
        job = batch.map(uses_probe, [1, 2], chunksize=1, retries=2, wait=True)
        frame = job.to_frame()
        assert frame["status"].tolist() == ["FAILED", "FAILED"]
        assert frame["error"].str.startswith("EnvironmentMismatch: the worker's environment").all()
        assert "module bbprobe is 1.0 on the worker, 2.0 here" not in frame.loc[0, "error"]
        assert "module bbprobe is 2.0 on the worker, 1.0 here" in frame.loc[0, "error"]
        assert frame["attempts"].tolist() == [1, 1]  # not retried: a retry cannot help
        with pytest.raises(EnvironmentMismatch, match="input 0: the worker's environment"):
            job.results()
    finally:
        sys.modules.pop("bbprobe", None)
        interpreter._distributions.cache_clear()
        stop_service(state)


def test_environment_differences_cover_python_and_missing_modules() -> None:
    local = {"python": "3.11.7", "versions": {"numpy": "2.0", "cloudpickle": "3.1"}}
    remote: dict[str, Any] = {"python": "3.12.1", "versions": {"numpy": None, "cloudpickle": "3.1"}}
    problems = interpreter.differences(local, remote)
    assert problems[0].startswith("Python 3.12.1 on the worker, 3.11.7 here")
    assert problems[1] == "module numpy is not installed on the worker (here: 2.0)"
    assert interpreter.differences(local, {**local, "python": "3.11.2"}) == []


def test_an_executor_with_a_misspelt_or_bad_option_fails_when_it_is_made() -> None:
    from batchbook.errors import ClientError

    with pytest.raises(ClientError, match=r"memroy: not an option; the options are .*memory"):
        batch.Executor(memroy="1 GiB")
    with pytest.raises(ClientError, match=r"vcpus: 0 is not allowed; use a number from 0.25"):
        batch.Executor(vcpus=0)
