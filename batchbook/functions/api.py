"""``batch.map``, ``batch.attach`` and ``batch.jobs``: the function layer's face for maps
(``batch.submit`` and ``batch.Executor`` are in :mod:`batchbook.functions.futures`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from batchbook.errors import ClientError, ResourceNotFound
from batchbook.functions.backend import Backend
from batchbook.functions.backends import current
from batchbook.functions.futures import Job
from batchbook.functions.guard import Guard
from batchbook.functions.ledger import read_ledger, settle_pending
from batchbook.functions.mapjob import MapJob
from batchbook.functions.options import RunOptions, parse_age
from batchbook.functions.payload import gc_paused
from batchbook.functions.schedule import forget_unused_templates
from batchbook.functions.submission import submit_run
from batchbook.wording import count

NEVER_SUBMITTED = "NEVER SUBMITTED"  # jobs()' status of a run whose client stopped first

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
    budget: float | None = None,
    reuse: bool = False,
    timeout_per_input: float | None = None,
    secrets: dict[str, str] | None = None,
    wait: bool = False,
) -> MapJob:
    """Run ``func`` over the inputs as one array job; the returned MapJob has the results.

    ``batch.map(g, first_mapjob)`` chains: g gets first_mapjob's results, and chunk i of
    g starts as soon as chunk i of the first map succeeded (an N_TO_N dependency).

    ``budget``: USD. Before submitting, the map's estimate (the last batch.estimate of the
    same function, inputs and sizes, else a sample of 3 inputs, each stopped after 60 s)
    must be at most that, or BudgetExceeded is raised and nothing is submitted; while it
    runs, the rest is cancelled once its running cost (MapJob.cost) passes it.
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
        budget=budget,
        reuse=reuse,
        timeout_per_input=timeout_per_input,
        secrets=secrets,
    )
    backend, manifest = submit_run(func, args, {}, options, source=source)
    reused = manifest.pop("reused", False)
    job = MapJob(backend, manifest)
    job.reused = reused
    if reused:
        return job  # as it was submitted, with its own guards
    if max_failures is not None or budget is not None:
        Guard(job, job.cancel, max_failures, options.budget).start()
    if wait:
        job.wait()
    return job


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
    """Every run so far, newest first: name, function, code hash, inputs, created, status,
    and what it keeps in the store (its function, inputs and results, in MiB)."""
    import pandas as pd

    backend = backend or current()
    runs = sorted(read_ledger(backend.store)[0], key=lambda run: run["created"], reverse=True)
    settle_pending(backend, runs)
    submitted = [r["jobId"] for r in runs if r["jobId"]]
    statuses = {d["jobId"]: d["status"] for d in backend.describe(submitted)} if submitted else {}
    sizes = stored_sizes(backend)
    columns = {
        "name": [r["name"] for r in runs],
        "run_id": [r["id"] for r in runs],
        "function": [r["function"] for r in runs],
        "code_hash": [r["codeHash"] for r in runs],
        "inputs": [r["n"] for r in runs],
        "arguments": [r["arguments"] for r in runs],
        "created": pd.to_datetime([r["created"] for r in runs], unit="ms"),
        "status": [
            statuses.get(r["jobId"], "UNKNOWN") if r["jobId"] else NEVER_SUBMITTED for r in runs
        ],
        "stored_mib": [round(sizes.get(r["id"], 0) / 2**20, 3) for r in runs],
        "job_id": [r["jobId"] for r in runs],
    }
    return pd.DataFrame(columns)


def stored_sizes(backend: Backend) -> dict[str, int]:
    """Run id -> the bytes it keeps in the store (one listing of the store's runs)."""
    sizes: dict[str, int] = {}
    for key, size in backend.store.list("runs/"):
        run_id = key.split("/", 2)[1]
        sizes[run_id] = sizes.get(run_id, 0) + size
    return sizes


class Cleanup(NamedTuple):
    """What batch.cleanup() removed, and what it kept and why."""

    removed: list[str]  # run ids (their retry_failed() runs went with them)
    freed_bytes: int
    kept: dict[str, str]  # run id -> why it stays

    def __repr__(self) -> str:
        kept = f"; kept {count(len(self.kept), 'run')} ({_reasons(self.kept)})" if self.kept else ""
        return (
            f"removed {count(len(self.removed), 'run')}, freed "
            f"{self.freed_bytes / 2**20:,.1f} MiB{kept}"
        )


def cleanup(older_than: str | float = "7d", backend: Backend | None = None) -> Cleanup:
    """Remove the finished runs created more than ``older_than`` ago ("7d", "12h", "30m",
    "90s", "2w", or seconds) from the store: their function, inputs and results. A run still
    running stays, and so does one that a kept chained run reads. Batch's records stay."""
    backend = backend or current()
    cutoff = time.time() * 1000 - parse_age(older_than) * 1000
    sizes = stored_sizes(backend)
    runs = [
        r
        for r in read_ledger(backend.store)[0]
        if r["created"] < cutoff and not r.get("parent")  # retries go with their map
    ]
    removed, kept, freed = [], {}, 0
    for run in sorted(runs, key=lambda r: r["created"], reverse=True):  # chained runs first
        job = MapJob.load(backend, run["id"])
        try:
            job.delete()
        except ClientError as e:
            kept[run["id"]] = str(e).split(": ", 1)[-1]
            continue
        removed.append(run["id"])
        freed += sum(sizes.get(r.id, 0) for r in (job, *job.follow_ups))
    freed += sum(sizes.get(t, 0) for t in forget_unused_templates(backend, cutoff))
    return Cleanup(removed, freed, kept)


def _reasons(kept: dict[str, str]) -> str:
    reasons: dict[str, int] = {}
    for why in kept.values():
        short = why.split(";", 1)[0]
        reasons[short] = reasons.get(short, 0) + 1
    return ", ".join(f"{n} {why}" for why, n in reasons.items())
