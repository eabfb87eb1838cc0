"""``batch.map``, ``batch.submit``, ``batch.Executor``, ``batch.attach`` and ``batch.jobs``."""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from batchbook.errors import BatchbookError, ClientError, ResourceNotFound
from batchbook.functions import environment
from batchbook.functions.backend import Backend, current
from batchbook.functions.mapjob import MapJob
from batchbook.functions.options import (
    check_env,
    check_int,
    check_vcpus,
    chunk_bounds,
    parse_memory,
)
from batchbook.functions.payload import (
    append_ledger,
    chunk_inputs,
    code_hash,
    gc_paused,
    pack_payload,
    read_ledger,
    read_part,
    run_key,
    summary,
    to_json,
)
from batchbook.functions.pickling import dumps, pickle_function, sources
from batchbook.functions.worker import EXIT_FINAL
from batchbook.vocabulary import FINAL
from batchbook.wording import count

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_MEMORY = 2048


def map(
    func: Callable[..., Any],
    *iterables: Iterable[Any],
    chunksize: int | None = None,
    name: str | None = None,
    vcpus: float = 1,
    memory: int | str | None = None,
    gpus: int = 0,
    queue: str | None = None,
    retries: int = 0,
    retry_on: Iterable[type[BaseException] | str] | None = None,
    timeout: int | None = None,
    env: dict[str, str] | None = None,
    depends_on: Iterable[MapJob | Job | str] | MapJob | Job | str | None = None,
    max_failures: int | None = None,
    wait: bool = False,
) -> MapJob:
    """Run ``func`` over the inputs as one array job; the returned MapJob has the results.

    ``batch.map(g, first_mapjob)`` chains: g gets first_mapjob's results, and chunk i of
    g starts as soon as chunk i of the first map succeeded (an N_TO_N dependency).
    """
    if not iterables:
        raise ClientError("iterables: give at least one iterable of inputs")
    source = iterables[0] if len(iterables) == 1 and isinstance(iterables[0], MapJob) else None
    if source is not None:
        source._check_stored()  # its results must still be there for the workers to read
    with gc_paused():
        args = None if source else list(zip(*iterables, strict=False))
    return _submit_run(
        func,
        args,
        {},
        source=source,
        chunksize=chunksize,
        name=name,
        vcpus=vcpus,
        memory=memory,
        gpus=gpus,
        queue=queue,
        retries=retries,
        retry_on=retry_on,
        timeout=timeout,
        env=env,
        depends_on=depends_on,
        max_failures=max_failures,
        wait=wait,
    )


def _submit_run(
    func: Callable[..., Any],
    args: list[tuple[Any, ...]] | None,
    kwargs: dict[str, Any],
    *,
    source: MapJob | None = None,
    parent: tuple[MapJob, list[int]] | None = None,
    chunksize: int | None = None,
    name: str | None = None,
    vcpus: float = 1,
    memory: int | str | None = None,
    gpus: int = 0,
    queue: str | None = None,
    retries: int = 0,
    retry_on: Iterable[type[BaseException] | str] | None = None,
    timeout: int | None = None,
    env: dict[str, str] | None = None,
    depends_on: Any = None,
    max_failures: int | None = None,
    wait: bool = False,
    backend: Backend | None = None,
) -> MapJob:
    # ---- everything is checked and pickled before anything is submitted
    vcpus = check_vcpus(vcpus)
    memory_mib = parse_memory(memory if memory is not None else DEFAULT_MEMORY)
    check_int("gpus", gpus, 0, 64)
    check_int("retries", retries, 0, 9)
    if timeout is not None:
        check_int("timeout", timeout, 1)
    if max_failures is not None:
        check_int("max_failures", max_failures, 0)
    environment_vars = check_env(env)
    retry_names = _retry_names(retry_on)
    filenames: set[str] = set()  # of the code pickled by value: its source goes with it
    function_bytes = pickle_function(func, filenames)
    kwargs_bytes = dumps(kwargs, "keyword arguments", filenames) if kwargs else None
    backend = backend or (source.backend if source else current())
    queue = backend.ensure_queue(queue)
    if source is not None:
        bounds = source.chunks
        n = source.size
        if chunksize is not None:
            raise ClientError("chunksize: a chained map uses the chunks of the map it consumes")
        args = None
    else:
        args = args or []
        n = len(args)
        if n == 0:
            raise ClientError("iterables: there are no inputs")
        auto = chunksize is None and n > 1
        bounds = chunk_bounds(n, chunksize, _parallelism(backend, queue, vcpus) if auto else 1)
    inputs_bytes, offsets = (b"", []) if args is None else chunk_inputs(args, bounds, filenames)
    dependencies = _dependencies(depends_on)
    backend.check_environment(environment.modules_used(func))

    # ---- the run goes to the store, then one job to Batch
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    fname = getattr(func, "__qualname__", type(func).__name__)
    manifest: dict[str, Any] = {
        "id": run_id,
        "name": name or fname,
        "function": f"{getattr(func, '__module__', '?')}.{fname}",
        "codeHash": code_hash(func, function_bytes),
        "created": int(time.time() * 1000),
        "n": n,
        "chunksize": bounds[0][1] - bounds[0][0],  # every chunk but the last has this many
        "arguments": f"results of map {source.name}" if source else summary(args or []),
        "source": source.id if source else None,
        "parent": {"run": parent[0].id, "indices": parent[1]} if parent else None,
        "kwargs": kwargs_bytes is not None,
        "retryOn": retry_names,
        "options": {
            "vcpus": vcpus,
            "memoryMiB": memory_mib,
            "gpus": gpus,
            "queue": queue,
            "retries": retries,
            "timeout": timeout,
            "env": environment_vars,
            "maxFailures": max_failures,
        },
    }
    store = backend.store
    parts, manifest["payload"] = pack_payload(
        function_bytes, kwargs_bytes or b"", inputs_bytes, offsets, sources(filenames)
    )
    store.create(run_key(run_id, "payload.bin"), parts)
    store.put(run_key(run_id, "run.json"), to_json(manifest))  # the workers read it: first
    request = _job_request(backend, manifest, store.url, dependencies, source)
    try:
        manifest["jobId"] = backend.batch.submit_job(**request)["jobId"]
    except Exception:
        store.remove(f"runs/{run_id}")  # nothing was accepted: leave nothing behind
        raise
    ledger = {
        k: manifest[k]
        for k in (
            "id",
            "jobId",
            "name",
            "function",
            "codeHash",
            "created",
            "n",
            "arguments",
            "source",
        )
    }
    append_ledger(store, [ledger])
    job = MapJob(backend, manifest)
    if max_failures is not None:
        _FailureGuard(job, max_failures).start()
    if wait:
        job.wait()
    return job


def _job_request(
    backend: Backend,
    manifest: dict[str, Any],
    store_url: str,
    dependencies: list[str],
    source: MapJob | None,
) -> dict[str, Any]:
    opts = manifest["options"]
    resources = [
        {"type": "VCPU", "value": f"{opts['vcpus']:g}"},
        {"type": "MEMORY", "value": str(opts["memoryMiB"])},
    ]
    if opts["gpus"]:
        resources.append({"type": "GPU", "value": str(opts["gpus"])})
    request: dict[str, Any] = {
        "jobName": _job_name(manifest["name"]),
        "jobQueue": opts["queue"],
        "jobDefinition": backend.job_definition(),
        "containerOverrides": {
            "command": ["python", "-m", "batchbook.runner", store_url, manifest["id"]],
            "resourceRequirements": resources,
            "environment": [{"name": k, "value": v} for k, v in opts["env"].items()],
        },
        "retryStrategy": {"attempts": opts["retries"] + 1},
        "tags": {"batchbook:run": manifest["id"]},
    }
    if manifest["retryOn"]:
        request["retryStrategy"]["evaluateOnExit"] = [
            {"onExitCode": str(EXIT_FINAL), "action": "EXIT"}
        ]
    chunks = -(-manifest["n"] // manifest["chunksize"])
    if chunks > 1:
        request["arrayProperties"] = {"size": chunks}
    if opts["timeout"]:
        request["timeout"] = {"attemptDurationSeconds": opts["timeout"]}
    depends = [{"jobId": d} for d in dependencies]
    if source is not None:
        kind = "N_TO_N" if len(source.chunks) > 1 else None
        depends.append({"jobId": source.job_id, **({"type": kind} if kind else {})})
    if depends:
        request["dependsOn"] = depends
    return request


def _job_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-_")
    return (cleaned or "map")[:128]


def _retry_names(retry_on: Any) -> list[str]:
    if retry_on is None:
        return []
    items = [retry_on] if isinstance(retry_on, type | str) else list(retry_on)
    names = []
    for item in items:
        if isinstance(item, type) and issubclass(item, BaseException):
            names.append(f"{item.__module__}.{item.__qualname__}")
        elif isinstance(item, str) and item:
            names.append(item)
        else:
            raise ClientError(f"retry_on: {item!r:.40} is not an exception class or name")
    return names


def _dependencies(depends_on: Any) -> list[str]:
    if depends_on is None:
        return []
    items = depends_on if isinstance(depends_on, list | tuple | set) else [depends_on]
    ids = []
    for item in items:
        if isinstance(item, MapJob):
            ids.append(item.job_id)
        elif isinstance(item, Job):
            ids.append(item.map_job.job_id)
        elif isinstance(item, str) and item:
            ids.append(item)
        else:
            raise ClientError(f"depends_on: {item!r:.40} is not a MapJob, a Job or a job id")
    return ids


def _parallelism(backend: Backend, queue: str, vcpus: float) -> int:
    """How many chunks the queue's compute environments run at once."""
    return max(1, int(backend.queue_vcpus(queue) // vcpus))


def resubmit(job: MapJob, indices: list[int], **options: Any) -> MapJob:
    """A new run of ``job``'s function over just ``indices`` (for MapJob.retry_failed)."""
    import pickle

    inputs = job.inputs()
    layout = job.manifest["payload"]
    func = pickle.loads(read_part(job.backend.store, job.id, layout["function"]))
    opts = job.manifest["options"]
    merged = {
        "vcpus": opts["vcpus"],
        "memory": opts["memoryMiB"],
        "gpus": opts["gpus"],
        "queue": opts["queue"],
        "retries": opts["retries"],
        "timeout": opts["timeout"],
        "env": opts["env"],
        "retry_on": job.manifest["retryOn"] or None,
        "name": f"{job.name}-retry",
        **options,
    }
    kwargs = {}
    if job.manifest.get("kwargs"):
        kwargs = pickle.loads(read_part(job.backend.store, job.id, layout["kwargs"]))
    return _submit_run(
        func,
        [inputs[i] for i in indices],
        kwargs,
        parent=(job, indices),
        backend=job.backend,
        **merged,
    )


class _FailureGuard(threading.Thread):
    """Cancels the rest of a map once more than ``max_failures`` inputs have failed."""

    def __init__(self, job: MapJob, max_failures: int):
        super().__init__(name=f"batchbook-max-failures-{job.id}", daemon=True)
        self.job, self.max_failures = job, max_failures

    def run(self) -> None:
        version = 0
        try:
            while True:
                self.job._refresh()
                failed = sum(1 for o in self.job._outcomes.values() if not o.ok)
                if failed > self.max_failures:
                    self.job.cancel(
                        f"max_failures: {count(failed, 'input')} failed (at most {self.max_failures} allowed)"
                    )
                    return
                if self.job.done:
                    return
                version = self.job.backend.wait_for_change(version, 10)
        except BatchbookError:
            return  # the service went away; nothing left to guard


# ---------------------------------------------------------------- futures
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
    return Job(_submit_run(func, [args], kwargs))


class Executor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` whose calls run as Batch jobs (options as for map)."""

    def __init__(self, **options: Any):
        self.options = options
        self._jobs: list[Job] = []
        self._shutdown = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Job:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            job = Job(_submit_run(fn, [args], kwargs, **self.options))
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
        job = _submit_run(
            fn, args, {}, chunksize=None if chunksize == 1 else chunksize, **self.options
        )
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


# ---------------------------------------------------------------- the ledger
def attach(name_or_id: str, backend: Backend | None = None) -> MapJob:
    """The MapJob of an earlier run (by run id, job id or name: the latest of that name)."""
    backend = backend or current()
    runs, deleted = read_ledger(backend.store)
    for run in runs:
        if name_or_id in (run["id"], run["jobId"]):
            return MapJob.load(backend, run["id"])
    named = [run for run in runs if run["name"] == name_or_id]
    if name_or_id in deleted:
        raise ResourceNotFound(f"attach: run {name_or_id} was deleted (MapJob.delete)")
    if not named:
        raise ResourceNotFound(
            f"attach: no run has the id or name {name_or_id!r}; see batch.jobs()"
        )
    return MapJob.load(backend, max(named, key=lambda run: run["created"])["id"])


def jobs(backend: Backend | None = None) -> pd.DataFrame:
    """Every run so far, newest first: name, function, code hash, inputs, created, status."""
    import pandas as pd

    backend = backend or current()
    runs = sorted(read_ledger(backend.store)[0], key=lambda run: run["created"], reverse=True)
    statuses = {}
    if runs:
        statuses = {d["jobId"]: d["status"] for d in backend.describe([r["jobId"] for r in runs])}
    columns = [
        "name",
        "run_id",
        "function",
        "code_hash",
        "inputs",
        "arguments",
        "created",
        "status",
        "job_id",
    ]
    return pd.DataFrame(
        [
            [
                run["name"],
                run["id"],
                run["function"],
                run["codeHash"],
                run["n"],
                run["arguments"],
                pd.to_datetime(run["created"], unit="ms"),
                statuses.get(run["jobId"], "UNKNOWN"),
                run["jobId"],
            ]
            for run in runs
        ],
        columns=columns,
    )
