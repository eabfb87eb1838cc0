"""One function call as a ``concurrent.futures.Future``: ``batch.submit`` and ``batch.Executor``.

One watcher thread per backend completes every pending future as its job finishes.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from batchbook.functions.backend import Backend
from batchbook.functions.mapjob import MapJob
from batchbook.functions.options import RunOptions, check_int
from batchbook.functions.payload import gc_paused
from batchbook.functions.submission import submit_run
from batchbook.vocabulary import FINAL


class Job(concurrent.futures.Future):  # type: ignore[type-arg]
    """One function call on Batch, as a ``concurrent.futures.Future``."""

    def __init__(self, map_job: MapJob):
        super().__init__()
        self.map_job = map_job
        self.job_id = map_job.job_id
        self.deciding = threading.RLock()  # cancel() and the watcher move the future one at a time
        self._watcher = _watcher(map_job.backend)
        self._watcher.add(self)

    def cancel(self) -> bool:
        """Cancel if it has not started (Future semantics): True if it will never run."""
        if self.done():
            return super().cancel()
        if self.running():
            return False
        with self.deciding:
            self.map_job.backend.batch.cancel_job(jobId=self.job_id, reason="Future.cancel()")
            (detail,) = self.map_job.backend.describe([self.job_id])
            if detail["status"] == "FAILED" and detail.get("isCancelled"):
                return super().cancel()
            self._watcher.update(self, detail)  # it started meanwhile, or even finished
            return False

    def logs(self) -> list[str]:
        return self.map_job.logs(0)

    def __repr__(self) -> str:
        return f"<batchbook.Job {self.job_id} {self._state.lower()}>"


class _Watcher(threading.Thread):
    """One thread per backend completes every pending Job future as its job finishes."""

    def __init__(self, backend: Backend):
        super().__init__(name="batchbook-futures", daemon=True)
        self.backend = backend
        self.pending: dict[str, Job] = {}
        self.lock = threading.Lock()

    def add(self, job: Job) -> None:
        with self.lock:
            self.pending[job.job_id] = job

    def run(self) -> None:
        version = 0
        try:
            while True:
                with self.lock:
                    jobs = dict(self.pending)
                if jobs:
                    for detail in self.backend.describe(list(jobs)):
                        self.update(jobs[detail["jobId"]], detail)
                # Wake when any job finished (a new future's job too): not at every step.
                version = self.backend.wait_for_change(version, 10, finished=True)
        except Exception as e:  # the service is gone: no pending future can finish now
            with self.lock:
                jobs, self.pending = dict(self.pending), {}
            for job in jobs.values():
                if not job.done() and (job.running() or job.set_running_or_notify_cancel()):
                    job.set_exception(e)

    def update(self, job: Job, detail: dict[str, Any]) -> None:
        """Move the future on to what ``detail`` (DescribeJobs) says of its job."""
        with job.deciding:
            self._move(job, detail)

    def _move(self, job: Job, detail: dict[str, Any]) -> None:
        status = detail["status"]
        if status in ("STARTING", "RUNNING") and not job.running() and not job.done():
            job.set_running_or_notify_cancel()
        if status not in FINAL:
            return
        with self.lock:
            self.pending.pop(job.job_id, None)
        if job.done():
            return
        if not job.running() and not job.set_running_or_notify_cancel():
            return  # cancelled meanwhile
        try:
            job.set_result(job.map_job.result_of_final(detail, 0))
        except BaseException as e:
            job.set_exception(e)


_watchers: dict[int, _Watcher] = {}
_watchers_lock = threading.Lock()


def _watcher(backend: Backend) -> _Watcher:
    with _watchers_lock:
        watcher = _watchers.get(id(backend))
        if watcher is None or not watcher.is_alive():
            watcher = _watchers[id(backend)] = _Watcher(backend)
            watcher.start()
        return watcher


def submit(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
    """Run ``func(*args, **kwargs)`` as one Batch job; a Future of its result."""
    return Job(MapJob(*submit_run(func, [args], kwargs, RunOptions())))


class Executor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` whose calls run as Batch jobs (options as for map)."""

    def __init__(self, **options: Any):
        self.options = RunOptions.from_user(options)  # a bad option fails here, not at submit
        self._jobs: list[Job] = []
        self._shutdown = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            job = Job(MapJob(*submit_run(fn, [args], kwargs, self.options)))
            self._jobs.append(job)
            return job

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        with gc_paused():
            args = list(zip(*iterables, strict=False))
        if not args:
            return iter(())
        check_int("chunksize", chunksize, 1)
        options = self.options.replace(chunksize=None if chunksize == 1 else chunksize)
        job = MapJob(*submit_run(fn, args, {}, options))
        deadline = None if timeout is None else time.monotonic() + timeout

        def results() -> Iterator[Any]:
            left = None if deadline is None else deadline - time.monotonic()
            job.wait(left, progress=False)
            if not job.done:
                job.cancel("Executor.map timed out")
                raise concurrent.futures.TimeoutError()
            yield from job.results()

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            jobs = list(self._jobs)
        if cancel_futures:
            for job in jobs:
                job.cancel()
        if wait:
            concurrent.futures.wait(jobs)
