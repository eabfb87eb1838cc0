"""batch.map through the real local service: results, failures, retries, limits, chaining."""

from __future__ import annotations

import os
import pickle
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import batchbook as batch
from batchbook.errors import (
    ClientError,
    JobFailed,
    RemoteError,
    ResourceNotFound,
    SerializationError,
)
from batchbook.functions.backend import Backend
from batchbook.instances import KEYWORDS
from tests.functions.conftest import calls, mark


def square_or_none(x: int) -> int | None:
    return None if x % 3 == 0 else x * x


def fails_on_seven(x: int) -> int:
    if x == 7:
        raise ValueError(f"seven is not allowed (got {x})")
    return x + 1


def test_results_are_in_input_order_and_none_is_kept(backend: Backend) -> None:
    job = batch.map(square_or_none, range(50), chunksize=7)
    assert job.results() == [square_or_none(x) for x in range(50)]
    assert job.status() == {"SUCCEEDED": 50}
    assert len(job.chunks) == 8  # ceil(50 / 7) children of one array job


def power(base: float, exponent: int) -> float:
    return base**exponent


def test_the_frame_keeps_real_inputs_and_a_column_per_parameter(backend: Backend) -> None:
    frame = batch.map(power, [0.5, 2, 3], [1, 2, 3], wait=True).to_frame()
    assert list(frame.columns[:4]) == ["input", "base", "exponent", "result"]
    assert frame["input"].tolist() == [(0.5, 1), (2, 2), (3, 3)]  # tuples, not strings
    assert frame.groupby("exponent")["result"].sum().to_dict() == {1: 0.5, 2: 4, 3: 27}
    clash = batch.map(lambda result, status: result, [1], [2], wait=True).to_frame()
    assert list(clash.columns[:4]) == ["input", "arg0", "arg1", "result"]  # names it uses
    builtin = batch.map(max, [1, 5], [4, 2], wait=True).to_frame()
    assert list(builtin.columns[:4]) == ["input", "arg0", "arg1", "result"]  # no signature
    assert builtin["result"].tolist() == [4, 5]


def test_the_frame_keeps_each_result_exactly_as_returned(backend: Backend) -> None:
    job = batch.map(square_or_none, range(7), chunksize=3, wait=True)
    frame = job.to_frame()  # pandas would make [0, 1, None, ...] a float column with NaN
    assert frame["result"].dtype == object and frame["input"].dtype == object
    assert frame["result"].tolist() == [None, 1, 4, None, 16, 25, None]
    assert [type(v) for v in frame["result"]] == [type(None), int, int] * 2 + [type(None)]
    assert [type(v) for v in frame["input"]] == [int] * 7 and frame["x"].tolist() == list(range(7))
    assert frame["attempts"].dtype == "int64" and frame["error"].tolist() == [None] * 7
    assert str(frame["started"].dtype).startswith("datetime64")


VALUES = [7, 10**40, 2.5, float("inf"), 3j, "text", "", "long" * 50_000, True, None, b"raw", [1, 2]]
GROWING: list[int] = []


def value_of(i: int) -> Any:
    return VALUES[i]


def growing(x: int) -> list[int]:
    GROWING.append(x)
    return GROWING  # the same list every time: each result is it as it was on return


def big_value(kind: str) -> Any:
    import numpy as np

    if kind == "bytes":
        return bytes(range(256)) * 1024  # 256 KiB: written beside the pickle, not in it
    if kind == "bytearray":
        return bytearray(b"x" * 100_000)
    if kind == "array":
        return np.arange(50_000, dtype=np.float64).reshape(500, 100)
    if kind == "readonly":
        frozen = np.ones(20_000)
        frozen.flags.writeable = False
        return frozen
    return {"nested": np.ones(20_000), "small": np.zeros(3), "label": kind}


BUFFER: list[Any] = []


def reused_buffer(i: int) -> Any:
    import numpy as np

    if not BUFFER:
        BUFFER.append(np.zeros(100_000))
    BUFFER[0][:] = i  # the same array every time, overwritten by the next input
    return BUFFER[0]


def test_big_buffers_come_back_whole_writable_and_as_returned(backend: Backend) -> None:
    import numpy as np

    kinds = ["bytes", "bytearray", "array", "dict", "readonly"]
    got = batch.map(big_value, kinds, chunksize=4).results()
    want = [big_value(k) for k in kinds]
    assert got[0] == want[0] and type(got[0]) is bytes
    assert got[1] == want[1] and type(got[1]) is bytearray
    assert np.array_equal(got[2], want[2]) and got[2].flags.writeable
    got[2][0, 0] = -1.0  # a result the user owns
    assert np.array_equal(got[3]["nested"], want[3]["nested"]) and got[3]["label"] == "dict"
    plain = pickle.loads(pickle.dumps(want[4], protocol=5))  # as plain pickle returns it
    assert np.array_equal(got[4], want[4]) and got[4].flags.writeable == plain.flags.writeable
    snapshots = batch.map(reused_buffer, range(5), chunksize=5).results()
    assert [float(a[0]) for a in snapshots] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(float(a[-1]) == i for i, a in enumerate(snapshots))


def test_values_of_every_kind_come_back_as_they_were_returned(backend: Backend) -> None:
    # Small immutable scalars travel inside the result block, the rest pickled at once.
    assert batch.map(value_of, range(len(VALUES))).results() == VALUES
    assert batch.map(growing, range(4), chunksize=4).results() == [
        [0],
        [0, 1],
        [0, 1, 2],
        [0, 1, 2, 3],
    ]
    chained = batch.map(value_of, range(len(VALUES)), chunksize=5)
    assert batch.map(repr, chained).results() == [repr(v) for v in VALUES]


def test_several_iterables_and_generators(backend: Backend) -> None:
    job = batch.map(pow, (i for i in range(20)), [2] * 25)  # zip semantics: 20 inputs
    assert job.results() == [i**2 for i in range(20)]


def test_ten_thousand_inputs_in_few_children(backend: Backend) -> None:
    job = batch.map(square_or_none, (i for i in range(10_000)))
    assert job.results() == [square_or_none(x) for x in range(10_000)]
    assert 1 < len(job.chunks) <= 64  # automatic chunking: a few children per vCPU


def test_exceptions_carry_the_remote_traceback(backend: Backend) -> None:
    job = batch.map(fails_on_seven, range(10), chunksize=2)
    with pytest.raises(RemoteError) as info:
        job.results()
    err = info.value
    assert err.index == 7 and err.type_name == "ValueError"
    assert "seven is not allowed (got 7)" in str(err)
    assert "in fails_on_seven" in err.traceback and 'raise ValueError(f"seven' in err.traceback
    assert "".join(err._render_traceback_()).count("fails_on_seven") >= 1
    results = job.results(return_exceptions=True)
    assert results[:7] == [1, 2, 3, 4, 5, 6, 7] and results[8:] == [9, 10]
    assert isinstance(results[7], RemoteError)
    assert list(job.exceptions()) == [7]
    frame = job.to_frame()
    assert list(frame.columns) == [
        "input", "x", "result", "status", "error", "traceback", "attempts", "started",
        "stopped", "duration", "peak_memory_mib", "cost", "log_stream", "job_id",
    ]  # fmt: skip
    assert frame.loc[7, "status"] == "FAILED"
    assert frame.loc[7, "error"] == "ValueError: seven is not allowed (got 7)"
    assert "fails_on_seven" in frame.loc[7, "traceback"]
    assert frame.loc[6, "result"] == 7 and frame.loc[6, "status"] == "SUCCEEDED"
    assert frame["job_id"].nunique() == 5 and frame.loc[7, "job_id"].endswith(":3")
    assert (frame["duration"] >= 0).all() and (frame["peak_memory_mib"] > 0).all()
    assert isinstance(frame.loc[0, "started"], pd.Timestamp)
    # what it would have cost on AWS: 5 attempts of under a minute, each billed 60 s
    spent = job.cost()
    assert spent.basis is not None and spent.basis.placement.split(".")[0] in KEYWORDS["optimal"]
    assert spent.total == pytest.approx(5 * 60 * spent.basis.hourly / 3600)
    assert frame["cost"].sum() == pytest.approx(spent.total)
    assert repr(spent).startswith(f"cost ${spent.total:,.4f} so far (estimated: ")
    assert re.search(r"us-east-1 prices of \d{4}-\d{2}-\d{2}", repr(spent))


def flaky(x: int, folder: str) -> int:
    mark(folder, x)
    if x in (3, 11) and os.environ["AWS_BATCH_JOB_ATTEMPT"] == "1":
        raise ConnectionError("transient")
    return x


def test_a_retry_reruns_only_the_failed_inputs(backend: Backend, marks: Path) -> None:
    job = batch.map(flaky, range(16), [str(marks)] * 16, chunksize=8, retries=2)
    assert job.results() == list(range(16))
    ran = calls(marks)
    assert ran == {str(i): 2 if i in (3, 11) else 1 for i in range(16)}
    frame = job.to_frame()
    assert frame.loc[3, "attempts"] == 2 and frame.loc[4, "attempts"] == 1
    detail = backend.describe([f"{job.job_id}:0"])[0]
    assert [a["container"]["exitCode"] for a in detail["attempts"]] == [1, 0]


def always_fails(x: int, folder: str) -> int:
    mark(folder, x)
    raise (ConnectionError if x == 0 else KeyError)(f"input {x}")


def test_retry_on_decides_which_failures_are_retried(backend: Backend, marks: Path) -> None:
    job = batch.map(
        always_fails, [0, 1], [str(marks)] * 2, chunksize=1, retries=2, retry_on=[ConnectionError]
    )
    job.wait()
    assert calls(marks) == {"0": 3, "1": 1}  # KeyError is not in retry_on: no retry
    assert job.to_frame()["status"].tolist() == ["FAILED", "FAILED"]


def sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def hog(mib: int) -> int:
    block = bytearray(mib << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(1)
    return len(block)


def test_timeouts_and_oom_appear_in_the_frame(backend: Backend) -> None:
    slow = batch.map(sleeper, [0.01, 30], chunksize=1, timeout=1)
    big = batch.map(hog, [400], memory="128 MiB")
    slow_frame, big_frame = slow.wait().to_frame(), big.wait().to_frame()
    assert slow_frame["status"].tolist() == ["SUCCEEDED", "FAILED"]
    assert slow_frame.loc[1, "error"] == "Job attempt duration exceeded timeout"
    assert big_frame.loc[0, "status"] == "FAILED"
    error = big_frame.loc[0, "error"]
    assert error.startswith("OutOfMemoryError: Container killed due to memory usage (it used ")
    used = int(error.split("it used ", 1)[1].split(" MiB")[0])
    assert used > 128 and "over its limit of 128 MiB): ask for more" in error
    with pytest.raises(JobFailed, match=r"OutOfMemoryError.*over its limit of 128 MiB"):
        big.results()
    assert (
        big.logs(0)[-1]
        == f"batchbook: killed for memory: it used {used} MiB, over its limit of 128 MiB"
    )


def test_cancel_stops_queued_and_running_inputs(backend: Backend) -> None:
    job = batch.map(sleeper, [20] * 6, chunksize=1)
    while job.status().get("RUNNING", 0) == 0:
        time.sleep(0.05)
    started = time.monotonic()
    job.cancel()
    job.wait(timeout=30)
    assert time.monotonic() - started < 15  # SIGTERM, not the 20 s sleep
    assert job.status() == {"FAILED": 6}
    assert set(job.to_frame()["error"]) == {"Cancelled by MapJob.cancel()"}


def test_cancel_stops_just_the_inputs_named(backend: Backend) -> None:
    job = batch.map(sleeper, [0.01, 30, 0.01, 0.01, 30, 0.01], chunksize=1)
    job.cancel("not these two", indices=[1, 4])
    job.wait(timeout=60)
    frame = job.to_frame()
    assert frame["status"].tolist() == ["SUCCEEDED", "FAILED"] + ["SUCCEEDED"] * 2 + [
        "FAILED",
        "SUCCEEDED",
    ]
    assert frame.loc[1, "error"] == frame.loc[4, "error"] == "not these two"
    with pytest.raises(IndexError, match=r"cancel\(indices=...\): 6 is not an input"):
        job.cancel(indices=[6])


@pytest.mark.parametrize("n", [1, 4])  # one job, and an array
def test_a_map_that_can_never_run_says_so(backend: Backend, n: int) -> None:
    from batchbook.errors import JobCannotRun

    job = batch.map(square_or_none, range(n), vcpus=64)  # this machine has far fewer
    with pytest.raises(JobCannotRun, match=r"MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT.*64"):
        job.wait(timeout=60)
    assert job.status() == {"RUNNABLE": n}  # Batch accepted it; it waits
    assert "cannot start: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in repr(job)
    assert "Cannot start:" in job._repr_html_()
    frame = job.to_frame()
    assert frame["error"].str.startswith("cannot start: MISCONFIGURATION").all()
    job.cancel()
    job.wait(timeout=60)
    assert job.status() == {"FAILED": n} and "cannot start" not in repr(job)


def needs_flag(x: int, flag: str) -> int:
    if x % 4 == 1 and not os.path.exists(flag):
        raise RuntimeError("flag missing")
    return -x


def test_retry_failed_runs_just_the_failures_and_merges_them(
    backend: Backend, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    job = batch.map(needs_flag, range(12), [str(flag)] * 12, chunksize=3)
    assert sorted(job.wait().exceptions()) == [1, 5, 9]
    flag.touch()
    again = job.retry_failed()
    assert again.size == 3 and again.results() == [-1, -5, -9]
    assert job.results() == [-x for x in range(12)]
    assert job.status() == {"SUCCEEDED": 12}
    reattached = batch.attach(job.id)  # the merge survives a new handle
    assert reattached.results() == [-x for x in range(12)]


def first_step(x: int) -> int:
    if x == 0:
        time.sleep(1.5)
    return x * 10


def second_step(y: int) -> int:
    return y + 1


def test_chained_maps_use_n_to_n(backend: Backend) -> None:
    first = batch.map(first_step, range(4), chunksize=1)
    second = batch.map(second_step, first)
    assert second.results() == [1, 11, 21, 31]
    request = backend.describe([second.job_id])[0]
    assert request["dependsOn"] == [{"jobId": first.job_id, "type": "N_TO_N"}]
    a, b = first.to_frame(), second.to_frame()
    # child 1 of the second map ran while child 0 of the first was still sleeping
    assert b.loc[1, "started"] < a.loc[0, "stopped"]


def test_unpicklable_input_fails_before_anything_is_submitted(backend: Backend) -> None:
    before = len(batch.jobs())
    with pytest.raises(SerializationError, match=r"input 2 \(<unlocked _thread.lock"):
        batch.map(str, [1, 2, threading.Lock()])
    lock = threading.Lock()
    with pytest.raises(SerializationError, match="function"):
        batch.map(lambda x: lock, [1])
    assert len(batch.jobs()) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"memory": "lots"}, "memory: 'lots' is not a size"),
        ({"retries": 11}, "retries: 11 is not allowed"),
        ({"vcpus": 0}, "vcpus: 0 is not allowed"),
        ({"chunksize": 0}, "chunksize: 0 is not allowed"),
        ({"env": {"AWS_BATCH_X": "1"}}, "env: 'AWS_BATCH_X' is not allowed"),
        ({"queue": "nope"}, "queue 'nope' does not exist"),
    ],
)
def test_bad_options_name_the_option(
    backend: Backend, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ClientError, match=message):
        batch.map(str, [1, 2], **options)


def counted_failure(x: int, folder: str) -> int:
    mark(folder, x)
    time.sleep(0.1)
    raise ValueError(x)


def test_max_failures_cancels_the_rest(backend: Backend, marks: Path) -> None:
    job = batch.map(counted_failure, range(40), [str(marks)] * 40, chunksize=1, max_failures=2)
    job.wait(timeout=60)
    assert job.status() == {"FAILED": 40}
    assert sum(calls(marks).values()) < 20  # most never started


def chatty(x: int) -> int:
    print(f"working on {x}")
    print(f"done with {x}", flush=True)
    return x


def talks_then_fails_once(x: int) -> int:
    attempt = os.environ["AWS_BATCH_JOB_ATTEMPT"]
    print(f"input {x}, attempt {attempt}: starting")
    print(f"input {x}, attempt {attempt}: working")
    if x == 1 and attempt == "1":
        raise RuntimeError("first attempt fails")
    return x


def test_logs_by_attempt_and_tail(backend: Backend) -> None:
    job = batch.map(talks_then_fails_once, range(3), chunksize=3, retries=1, wait=True)
    assert job.results() == [0, 1, 2]
    assert job.logs(1) == ["input 1, attempt 2: starting", "input 1, attempt 2: working"]
    assert job.logs(1, attempt=1) == [
        "input 1, attempt 1: starting",
        "input 1, attempt 1: working",
    ]
    assert job.logs(1, tail=1) == ["input 1, attempt 2: working"]
    assert job.logs(1, attempt=1, tail=0) == []
    assert job.logs(0, attempt=2) == []  # done in attempt 1: attempt 2 skipped it
    assert job.logs(2, attempt=1) == ["input 2, attempt 1: starting", "input 2, attempt 1: working"]
    with pytest.raises(IndexError, match=r"attempt=3\): input 1 has had 2 finished attempts"):
        job.logs(1, attempt=3)
    with pytest.raises(ClientError, match="tail: -1 is not a whole number"):
        job.logs(1, tail=-1)


def prints_many(lines: int) -> int:
    for k in range(lines):
        print(f"line {k} of {lines}")
    return lines


def test_logs_of_an_input_seek_past_the_lines_before_it(backend: Backend) -> None:
    job = batch.map(prints_many, [25_000, 3], chunksize=2, wait=True)
    calls: list[dict[str, Any]] = []
    events = backend.logs._client.meta.events
    hook = lambda params, **_: calls.append(params)  # noqa: E731
    events.register("before-call.cloudwatch-logs.GetLogEvents", hook)
    try:
        assert job.logs(1) == ["line 0 of 3", "line 1 of 3", "line 2 of 3"]
    finally:
        events.unregister("before-call.cloudwatch-logs.GetLogEvents", hook)
    assert len(calls) == 1, "25,000 lines were paged past instead of sought over"
    assert job.logs(0, tail=2) == ["line 24998 of 25000", "line 24999 of 25000"]
    assert len(job.logs(0)) == 25_000


def test_logs_of_one_input_and_the_ledger(backend: Backend) -> None:
    job = batch.map(chatty, range(6), chunksize=3, name="chatty-run")
    job.wait()
    assert job.logs(4) == ["working on 4", "done with 4"]
    for wrong in (6, 99, -1):
        with pytest.raises(IndexError, match=r"has 6 inputs, so the index is 0 to 5"):
            job.logs(wrong)
    one = batch.map(chatty, [7], name="one-input", wait=True)
    assert "(1 input," in repr(one) and "1 input," in batch.jobs().iloc[0]["arguments"]
    ledger = batch.jobs()
    row = ledger[ledger["run_id"] == job.id].iloc[0]
    assert row["name"] == "chatty-run" and row["inputs"] == 6 and row["status"] == "SUCCEEDED"
    assert row["function"].endswith("chatty") and len(row["code_hash"]) == 12
    assert batch.attach("chatty-run").id == job.id
    assert "chatty-run" in repr(job) and "succeeded 6" in repr(job)
    assert "<table>" in job._repr_html_()


def test_delete_removes_a_finished_map_and_refuses_a_running_one(
    backend: Backend, tmp_path: Path
) -> None:
    store = backend.store
    flag = tmp_path / "flag"
    job = batch.map(needs_flag, range(6), [str(flag)] * 6, chunksize=3, name="to-delete")
    job.wait()
    flag.touch()
    follow_up = job.retry_failed()
    follow_up.wait()
    slow = batch.map(sleeper, [5.0], name="still-running")
    with pytest.raises(ClientError, match="still running; wait"):
        slow.delete()
    assert store.list(f"runs/{slow.id}/")  # refused: nothing removed
    with pytest.raises(ClientError, match="is a retry_failed\\(\\) run of run"):
        follow_up.delete()
    other_handle = batch.attach(job.id)
    job.delete()
    for run in (job, follow_up):
        assert not store.list(f"runs/{run.id}/")
    with pytest.raises(ResourceNotFound, match="was deleted"):
        other_handle.results()  # deleted through another handle: it knows too
    assert "deleted" in repr(other_handle)
    listed = set(batch.jobs()["run_id"])
    assert job.id not in listed and follow_up.id not in listed and slow.id in listed
    with pytest.raises(ResourceNotFound, match="was deleted"):
        batch.attach(job.id)
    for use_after_delete in (job.results, job.inputs, job.retry_failed, follow_up.status):
        with pytest.raises(ResourceNotFound, match="was deleted"):
            use_after_delete()
    with pytest.raises(ResourceNotFound, match="no run has the id or name 'to-delete'"):
        batch.attach("to-delete")
    slow.cancel()
    slow.wait()
    slow.delete()  # final once cancelled: it can go
    assert slow.id not in set(batch.jobs()["run_id"])


def linger(x: float) -> float:
    time.sleep(3)
    return x


def test_delete_waits_for_the_maps_chained_on_it(backend: Backend) -> None:
    first = batch.map(sleeper, [0.0])
    first.wait()
    chained = batch.map(linger, first)  # reads first's results when it starts
    with pytest.raises(ClientError, match="maps chained on it read its results"):
        first.delete()
    assert first.results() == [0.0]  # refused: still there
    chained.cancel()
    chained.wait()
    with pytest.raises(ClientError, match="delete them first"):
        first.delete()  # finished, but its inputs() still read first's results
    chained.delete()
    first.delete()
    with pytest.raises(ResourceNotFound, match="was deleted"):
        batch.attach(first.id)
    with pytest.raises(ResourceNotFound, match="was deleted"):
        batch.map(linger, first)  # nothing left to chain on


def test_iteration_yields_inputs_as_they_complete(backend: Backend) -> None:
    job = batch.map(sleeper, [1.0, 0.01, 0.01, 0.01], chunksize=1)
    order = [i for i, _ in job]
    assert sorted(order) == [0, 1, 2, 3] and order[-1] == 0  # the slow one comes last
    failing = batch.map(fails_on_seven, [6, 7, 8], chunksize=1)
    got = dict(failing.as_completed(return_exceptions=True))
    assert got[0] == 7 and got[2] == 9 and isinstance(got[1], RemoteError)
    with pytest.raises(RemoteError):
        dict(batch.map(fails_on_seven, [7]))


def test_depends_on_waits_for_other_jobs(backend: Backend) -> None:
    first = batch.map(sleeper, [0.5], name="first")
    second = batch.map(sleeper, [0.01], depends_on=[first, first.job_id])
    second.wait()
    a, b = first.to_frame(), second.to_frame()
    assert b.loc[0, "started"] >= a.loc[0, "stopped"]
    (detail,) = backend.describe([second.job_id])
    assert detail["dependsOn"] == [{"jobId": first.job_id}, {"jobId": first.job_id}]


def test_wait_draws_a_progress_bar_in_terminals(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pty

    master, slave = pty.openpty()
    with open(slave, "w", closefd=True) as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        batch.map(square_or_none, range(20), chunksize=5).wait()
        batch.map(fails_on_seven, range(10), chunksize=5).wait()  # one input fails
    os.set_blocking(master, False)
    parts = []
    while True:  # a pty hands out what was written in pieces: read until nothing is left
        try:
            part = os.read(master, 65536)
        except OSError:  # BlockingIOError, or EIO once the closed side is drained
            break
        if not part:
            break
        parts.append(part)
    drawn = b"".join(parts).decode()
    os.close(master)
    assert "20/20 finished (20 done)" in drawn and "[##############################]" in drawn
    assert "10/10 finished (9 done, 1 failed)" in drawn  # finished, not stuck at 9/10


def test_a_refused_submission_leaves_no_run_behind(backend: Backend) -> None:
    before = set(backend.store.list("runs/"))
    with pytest.raises(
        ClientError, match=r"timeout\.attemptDurationSeconds: 10000000 is out of range"
    ):
        batch.map(str, [1], timeout=10**7)  # over Batch's 14-day limit: SubmitJob says no
    assert set(backend.store.list("runs/")) == before


def test_a_chained_map_after_a_failure_reports_both(backend: Backend) -> None:
    first = batch.map(fails_on_seven, [6, 7], chunksize=1)
    second = batch.map(second_step, first)
    frame = second.wait().to_frame()
    assert frame.loc[0, "result"] == 8 and frame.loc[0, "input"] == 7
    assert frame.loc[1, "status"] == "FAILED" and frame.loc[1, "error"] == "Dependent Job failed"
    assert isinstance(frame.loc[1, "input"], RemoteError)  # what the first map gave it
