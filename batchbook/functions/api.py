"""``batch.map``, ``batch.attach`` and ``batch.jobs``: the function layer's face for maps
(``batch.submit`` and ``batch.Executor`` are in :mod:`batchbook.functions.futures`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from batchbook.errors import BatchbookError, ClientError, ResourceNotFound
from batchbook.functions.backend import Backend, current
from batchbook.functions.futures import Job
from batchbook.functions.ledger import read_ledger
from batchbook.functions.mapjob import MapJob
from batchbook.functions.options import RunOptions
from batchbook.functions.payload import gc_paused
from batchbook.functions.submission import submit_run
from batchbook.wording import count

if TYPE_CHECKING:
    import pandas as pd


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
    options = RunOptions.checked(
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
    )
    job = MapJob(*submit_run(func, args, {}, options, source=source))
    if max_failures is not None:
        _FailureGuard(job, max_failures).start()
    if wait:
        job.wait()
    return job


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
