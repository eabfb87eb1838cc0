"""One function call as a ``concurrent.futures.Future``: ``batch.submit`` and ``batch.Executor``.

One watcher thread per backend completes every pending future as its job finishes.
"""

from __future__ import annotations

import concurrent.futures
import html
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from batchbook import display
from batchbook.errors import ClientError
from batchbook.functions.mapjob import MapJob
from batchbook.functions.options import RunOptions, check_int
from batchbook.functions.payload import gc_paused
from batchbook.functions.submission import submit_run
from batchbook.functions.watcher import watcher
from batchbook.vocabulary import FINAL


class Job(concurrent.futures.Future):  # type: ignore[type-arg]
    """One function call on Batch, as a ``concurrent.futures.Future``."""

    def __init__(self, map_job: MapJob):
        super().__init__()
        self.map_job = map_job
        self.job_id = map_job.job_id
        self.deciding = threading.RLock()  # cancel() and the watcher move the future one at a time
        watcher(map_job.backend).add_future(self)

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
            self.settle(detail)  # it started meanwhile, or even finished
            return False

    def settle(self, detail: dict[str, Any]) -> bool:
        """Move on to what ``detail`` (DescribeJobs) says of the job; True once done."""
        with self.deciding:
            status = detail["status"]
            if status in ("STARTING", "RUNNING") and not self.running() and not self.done():
                self.set_running_or_notify_cancel()
            if status not in FINAL:
                return False
            if self.done():
                return True
            if not self.running() and not self.set_running_or_notify_cancel():
                return True  # cancelled meanwhile
            try:
                self.set_result(self.map_job.result_of_final(detail, 0))
            except BaseException as e:
                self.set_exception(e)
            return True

    def fail(self, error: BaseException) -> None:
        """The backend is gone: this call can never finish."""
        with self.deciding:
            if not self.done() and (self.running() or self.set_running_or_notify_cancel()):
                self.set_exception(error)

    def logs(self) -> list[str]:
        return self.map_job.logs(0)

    def __repr__(self) -> str:
        return f"<batchbook.Job {self.job_id} {self._state.lower()}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """In a kernel, its map's live job view, with the text and HTML summaries beside it."""
        page = f"<div><code>{html.escape(repr(self))}</code></div>"
        return display.bundle("MapJob", self.map_job, repr(self), page, **kwargs)


def submit(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
    """Run ``func(*args, **kwargs)`` as one Batch job; a Future of its result."""
    return Job(MapJob(*submit_run(func, [args], kwargs, RunOptions(), findable=False)))


class Executor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` whose calls run as Batch jobs (options as for map)."""

    def __init__(self, **options: Any):
        if options.get("budget") is not None:  # its check would run each call here first
            raise ClientError(
                "budget: batch.map and MapJob.retry_failed take a budget; an Executor runs one "
                "job per call: see what they would cost with batch.estimate"
            )
        self.options = RunOptions.from_user(options)  # a bad option fails here, not at submit
        self._jobs: list[Job] = []
        self._shutdown = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            job = Job(MapJob(*submit_run(fn, [args], kwargs, self.options, findable=False)))
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
