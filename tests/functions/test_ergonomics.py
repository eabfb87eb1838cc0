"""Research ergonomics on the local engine: a map run again with the same code, inputs and
options is given back, not paid for twice; checkpoints that a retried attempt and
retry_failed() resume from; a per-input timeout that fails one input and lets its chunk go on."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.errors import ClientError
from batchbook.functions.backend import Backend
from tests.functions.conftest import calls, mark


@pytest.fixture(scope="module")
def backend(folder_backend: Backend) -> Backend:
    return folder_backend


def counted(x: int, folder: str) -> int:
    mark(folder, x)
    return x + 1


def counted_twice(x: int, folder: str) -> int:  # the same, edited
    mark(folder, x)
    return x + 2


def test_a_map_run_again_is_given_back_until_its_code_inputs_or_options_change(
    backend: Backend, marks: Path
) -> None:
    folders = [str(marks)] * 3
    first = batch.map(counted, range(3), folders, reuse=True).wait(progress=False)
    assert not first.reused and first.run_id == first.id
    again = batch.map(counted, range(3), folders, reuse=True)
    assert again.reused and again.run_id == first.run_id  # no new run, nothing ran again
    assert again.results() == [1, 2, 3] and sum(calls(marks).values()) == 3
    assert f"(reused run {first.run_id}: same code, inputs and options)" in repr(again)
    for changed in (
        lambda: batch.map(counted_twice, range(3), folders, reuse=True),  # the code
        lambda: batch.map(counted, range(4), [str(marks)] * 4, reuse=True),  # the inputs
        lambda: batch.map(counted, range(3), folders, memory="1 GiB", reuse=True),  # an option
        lambda: batch.map(counted, range(3), folders),  # reuse=False: always a new run
    ):
        job = changed().wait(progress=False)
        assert not job.reused and job.run_id != first.run_id
    cancelled = batch.map(time.sleep, [60], reuse=True)
    cancelled.cancel()
    cancelled.wait(timeout=60, progress=False)
    fresh = batch.map(time.sleep, [60], reuse=True)  # a failed run is never given back
    assert not fresh.reused
    fresh.cancel()


def resumes(steps: int, folder: str) -> int:
    """Counts to ``steps``, one checkpoint per step; the first attempt fails at step 3."""
    done = batch.restore(default=0)
    for step in range(done, steps):
        Path(folder, f"ran-{step}-attempt-{os.environ['AWS_BATCH_JOB_ATTEMPT']}").touch()
        if step == 3 and os.environ["AWS_BATCH_JOB_ATTEMPT"] == "1":
            raise RuntimeError("the node went away")
        batch.checkpoint(step + 1)
    return steps


def test_a_retried_attempt_resumes_from_its_checkpoint(backend: Backend, tmp_path: Path) -> None:
    job = batch.map(resumes, [6], [str(tmp_path)], retries=1).wait(timeout=120, progress=False)
    assert job.results() == [6]
    ran = sorted(p.name for p in tmp_path.iterdir())
    assert ran == sorted(
        [f"ran-{s}-attempt-1" for s in range(4)] + [f"ran-{s}-attempt-2" for s in (3, 4, 5)]
    )  # steps 0-2 were not run again
    with pytest.raises(ClientError, match=r"batch\.checkpoint\(\): only inside a function"):
        batch.checkpoint(1)


def fails_after_checkpoint(x: int, folder: str) -> int:
    start = batch.restore(default=None)
    if start is None:
        batch.checkpoint(f"half of {x}")
        raise ValueError("stopped half way")
    Path(folder, f"{x}").write_text(start)
    return x


def test_retry_failed_resumes_from_the_checkpoints_of_the_run_it_retries(
    backend: Backend, tmp_path: Path
) -> None:
    first = batch.map(fails_after_checkpoint, [7, 8], [str(tmp_path)] * 2).wait(progress=False)
    assert len(first.exceptions()) == 2
    again = first.retry_failed().wait(timeout=120, progress=False)
    assert again.results() == [7, 8]
    assert (tmp_path / "7").read_text() == "half of 7"  # restored from the first run's


def sleeps(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_a_per_input_timeout_fails_that_input_and_its_chunk_goes_on(backend: Backend) -> None:
    job = batch.map(sleeps, [0.01, 30, 0.02], chunksize=3, timeout_per_input=1)
    frame = job.wait(timeout=120, progress=False).to_frame()
    assert frame["status"].tolist() == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert frame.loc[1, "error"] == "TimeoutError: the input ran past its timeout_per_input of 1 s"
    assert "in sleeps" in frame.loc[1, "traceback"]
    assert frame["job_id"].nunique() == 1  # one chunk: the others ran in it after the timeout
    with pytest.raises(ClientError, match="timeout_per_input: 0 is not a number of seconds"):
        batch.map(sleeps, [1], timeout_per_input=0)
