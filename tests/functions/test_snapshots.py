"""Snapshots of a real running 10,000-child array: counts right while it runs, in a few
Batch calls (counted with a botocore event hook), children paged and filtered."""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import batchbook as batch
from batchbook.functions.backend import Backend
from batchbook.functions.snapshot import input_statuses

CHILDREN = 10_000


def held(x: int, gate: str) -> int:
    """Inputs below 100 return at once, 100-104 fail, the rest wait for the gate."""
    if 100 <= x < 105:
        raise ValueError(f"input {x} fails")
    while x >= 105 and not os.path.exists(gate):  # on the worker
        time.sleep(0.05)
    return x


class Calls:
    """Counts the Batch API calls a client makes."""

    def __init__(self, backend: Backend):
        self.names: list[str] = []
        backend.batch._client.meta.events.register("before-call.batch", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


@pytest.mark.slow
def test_a_running_ten_thousand_child_array_in_a_few_calls(
    backend: Backend, tmp_path: Path
) -> None:
    gate = str(tmp_path / "gate")
    job = batch.map(held, range(CHILDREN), [gate] * CHILDREN, chunksize=1)
    try:
        version = 0
        while (job.snapshot(max_age=0).done, job.snapshot().failed, job.snapshot().running) != (
            100,
            5,
            2,
        ):
            version = backend.wait_for_change(version, 10)  # until only the held ones run
        # what every child says, one DescribeJobs of 100 after another: the truth to match
        truth: dict[str, int] = {}
        for child in backend.describe(job.chunk_job_ids):
            truth[child["status"]] = truth.get(child["status"], 0) + 1
        assert truth == {"SUCCEEDED": 100, "FAILED": 5, "RUNNING": 2, "RUNNABLE": CHILDREN - 107}
        calls = Calls(backend)
        snap = job.snapshot(max_age=0)
        assert snap.counts() == truth
        assert snap.done == 100 and snap.failed == 5 and snap.running == 2
        assert snap.waiting == CHILDREN - 107 and not snap.final and snap.eta
        assert len(calls.names) == snap.calls <= 3, calls.names
        assert job.status() == snap.counts() and "runnable 9893" in repr(job)
        assert len(calls.names) == snap.calls  # status() and repr reused the snapshot
        page = job.snapshot(rows=slice(0, 50), status="RUNNABLE")
        assert len(page.rows) == 50 and {r["status"] for r in page.rows} == {"RUNNABLE"}
        failed = job.snapshot(rows=slice(0, 50), status="FAILED").rows
        assert sorted(r["arrayProperties"]["index"] for r in failed) == [100, 101, 102, 103, 104]
    finally:
        job.cancel()
    job.wait(timeout=120)
    final = job.snapshot(max_age=0)
    assert final.final and final.counts() == {"SUCCEEDED": 100, "FAILED": CHILDREN - 100}


def test_input_statuses_places_each_input() -> None:
    chunks = [(0, 3), (3, 6), (6, 9), (9, 10)]
    # chunk 0 done, chunk 1 running with one value back, chunk 2 failed, chunk 3 waiting
    counts = input_statuses(
        chunks, [3, 1, 0, 0], {1: "RUNNING", 2: "FAILED"}, {"RUNNABLE": 1, "SUCCEEDED": 1}
    )
    assert {k: v for k, v in counts.items() if v} == {
        "SUCCEEDED": 4,
        "RUNNING": 2,
        "FAILED": 3,
        "RUNNABLE": 1,
    }
    pending = input_statuses(chunks, [0, 0, 0, 0], {}, {"PENDING": 3, "RUNNABLE": 1})
    assert pending["RUNNABLE"] == 3 and pending["PENDING"] == 7  # the earlier chunks ahead


def slow_square(x: int) -> int:
    time.sleep(0.3)
    return x * x


def test_one_watcher_refreshes_every_handle_and_view_at_most_twice_a_second(
    backend: Backend,
) -> None:
    from batchbook.functions.mapjob import MapJob
    from batchbook.functions.watcher import ROUND_SECONDS, watcher

    job = batch.map(slow_square, range(12), chunksize=1)
    other = MapJob.load(backend, job.id)  # another handle of the same run
    seen: dict[str, list[Any]] = {"a": [], "b": [], "c": []}
    done = threading.Event()

    def view(name: str) -> Any:
        def show(snap: Any) -> None:
            seen[name].append(snap)
            if snap.final and all(s and s[-1].final for s in seen.values()):
                done.set()

        return show

    stop_a = job.watch(view("a"))
    other.watch(view("b"))
    job.watch(view("c"))
    rounds_before = watcher(backend).rounds
    assert done.wait(120)  # the watcher delivers the final snapshot to all three
    stop_a()
    a, b, c = seen["a"], seen["b"], seen["c"]
    assert [id(s) for s in a] == [id(s) for s in b] == [id(s) for s in c]  # one refresh each
    assert watcher(backend).rounds - rounds_before == len(a)
    assert a[-1].final and a[-1].counts() == {"SUCCEEDED": 12}
    gaps = [later.taken - earlier.taken for earlier, later in itertools.pairwise(a)]
    assert all(gap >= ROUND_SECONDS * 0.99 for gap in gaps), gaps  # at most twice a second
    assert job.snapshot().final
    assert watcher(backend).latest(job.id) is None  # final: no longer watched


class CountedStore:
    """The backend's own store, counting the listings made through it."""

    def __init__(self, store: Any):
        self.store, self.listed = store, []

    def list(self, prefix: str) -> Any:
        self.listed.append(prefix)
        return self.store.list(prefix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def fails_on_five(x: int) -> int:
    if x % 50 == 5:
        raise ValueError("five")
    return x


def test_a_refresh_lists_only_the_chunks_that_may_have_written_more(backend: Backend) -> None:
    import copy

    from batchbook.functions.mapjob import MapJob

    job = batch.map(fails_on_five, range(300), chunksize=1).wait(progress=False)
    counted = copy.copy(backend)
    counted.store = CountedStore(backend.store)  # type: ignore[assignment]
    again = MapJob.load(counted, job.id)
    first = again.snapshot(max_age=0)
    assert first.counts() == {"SUCCEEDED": 294, "FAILED": 6}
    results = [p for p in counted.store.listed if "/results/" in p]
    assert len(results) == 300  # the first look reads every chunk's folder once
    counted.store.listed.clear()
    assert again.snapshot(max_age=0).counts() == first.counts()
    assert [p for p in counted.store.listed if "/results/" in p] == []  # all complete now
    assert again.results(return_exceptions=True)[5].__class__.__name__ == "RemoteError"


class Broken:
    """A watched thing whose look fails once (a throttled call, say)."""

    id = "broken-once"

    def __init__(self) -> None:
        self.looks = 0

    def snapshot(self, max_age: float = 0) -> Any:
        self.looks += 1
        if self.looks == 1:
            raise RuntimeError("this look failed")
        return type("Final", (), {"final": True})()


def test_a_failing_look_neither_stops_the_watcher_nor_the_other_runs(backend: Backend) -> None:
    from batchbook.functions.watcher import watcher

    broken, final = Broken(), threading.Event()
    stop = watcher(backend).watch(broken, lambda snap: None)
    job = batch.map(slow_square, range(3), chunksize=1)
    job.watch(lambda snap: final.set() if snap.final else None)
    assert final.wait(120)  # the map's final snapshot still came
    assert watcher(backend).is_alive() and broken.looks >= 2  # and the broken one was retried
    stop()


def test_a_second_handle_shows_the_rows_of_the_shared_snapshot(backend: Backend) -> None:
    from batchbook.functions.mapjob import MapJob

    job = batch.map(slow_square, range(4), chunksize=1)
    final = threading.Event()
    job.watch(lambda snap: final.set() if snap.final else None)
    assert final.wait(120)
    other = MapJob.load(backend, job.id)  # has read nothing itself
    rows = other.input_rows(other.snapshot())  # the watcher's snapshot of the run
    assert [r.status for r in rows] == ["SUCCEEDED"] * 4


def test_a_snapshot_taken_while_it_ran_is_not_reported_once_it_is_final(
    backend: Backend,
) -> None:
    job = batch.map(time.sleep, [0.2, 0.2], chunksize=1)
    assert not job.snapshot().final  # taken while it runs (a live view's watcher does so)
    job.wait(progress=False)
    assert job.snapshot(max_age=3600).counts() == {"SUCCEEDED": 2}  # not the one of before
    assert job.status() == {"SUCCEEDED": 2}
