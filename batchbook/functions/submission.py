"""Submitting a run: check the options, pickle the function and inputs, store them, submit
one (array) job, record it in the ledger. Everything is checked and pickled before anything
is submitted. Returns manifests; the handles (MapJob, Job) are built by their modules.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from batchbook.cost.actual import CostBasis
from batchbook.errors import ClientError
from batchbook.functions import environment
from batchbook.functions.backend import Backend
from batchbook.functions.backends import current
from batchbook.functions.estimating import budget_check, default_basis
from batchbook.functions.firing import SCHEDULE_TAG
from batchbook.functions.ledger import LEDGER_FIELDS, RUN_TAG, ledger_key, record_run
from batchbook.functions.options import RunOptions, chunk_bounds
from batchbook.functions.payload import (
    chunk_inputs,
    code_hash,
    pack_payload,
    read_part,
    run_key,
    summary,
    to_json,
)
from batchbook.functions.pickling import dumps, pickle_function, sources
from batchbook.functions.reuse import record_reusable, reusable_run, reuse_key
from batchbook.functions.worker import EXIT_FAILED, EXIT_FINAL, EXIT_STORE
from batchbook.vocabulary import MAX_ATTEMPTS


class Run(Protocol):
    """What submission reads of an earlier run (a MapJob) that a new one chains on or retries."""

    id: str
    job_id: str
    name: str
    size: int
    chunks: list[tuple[int, int]]
    backend: Backend
    manifest: dict[str, Any]

    def inputs(self) -> list[tuple[Any, ...]]: ...


def submit_run(
    func: Callable[..., Any],
    args: list[tuple[Any, ...]] | None,
    kwargs: dict[str, Any],
    options: RunOptions,
    *,
    source: Run | None = None,
    parent: tuple[Run, list[int]] | None = None,
    backend: Backend | None = None,
    findable: bool = True,
    schedule: dict[str, str] | None = None,
) -> tuple[Backend, dict[str, Any]]:
    """Pickle and store a run, then submit its one (array) job: the backend and the run's
    manifest (with its ``jobId``). Nothing is submitted unless everything checked out and
    pickled, and nothing is left in the store if the submission was refused. ``findable``:
    record its reuse key, so a later map with reuse=True finds it. ``schedule`` (its
    ``name``, and the ``scheduler`` it is made on): store it as that schedule's template
    and submit nothing: the manifest's ``request`` is the
    SubmitJob request each firing makes (see :mod:`batchbook.functions.firing`)."""
    filenames: set[str] = set()  # of the code pickled by value: its source goes with it
    function_bytes = pickle_function(func, filenames)
    kwargs_bytes = dumps(kwargs, "keyword arguments", filenames) if kwargs else None
    backend = backend or (source.backend if source else current())
    queue = backend.ensure_queue(options.queue)
    if source is not None:
        bounds = source.chunks
        n = source.size
        if options.chunksize is not None:
            raise ClientError("chunksize: a chained map uses the chunks of the map it consumes")
        args = None
    else:
        args = args or []
        n = len(args)
        if n == 0:
            raise ClientError("iterables: there are no inputs")
        auto = options.chunksize is None and n > 1
        parallelism = _parallelism(backend, queue, options.vcpus) if auto else 1
        bounds = chunk_bounds(n, options.chunksize, parallelism)
    inputs_bytes, offsets = (b"", []) if args is None else chunk_inputs(args, bounds, filenames)
    # a map is found again by its key (``findable``; a single call of batch.submit is not)
    key = None
    if findable or options.reuse:
        key = reuse_key(
            func, function_bytes, sources(filenames), kwargs_bytes,
            f"results of run {source.id}" if source else inputs_bytes,
            options, queue, bounds[0][1] - bounds[0][0],
        )  # fmt: skip
    if options.reuse and key is not None:
        found = reusable_run(backend.store, key)
        if found is not None and _reusable(backend, found):
            return backend, {**found, "reused": True}
    # what its attempts will be counted at; with a budget, the estimate it must stay under
    # (BudgetExceeded here: nothing is stored or submitted)
    if options.budget is not None and args is None:
        raise ClientError(
            "budget: a chained map's inputs are another map's results, not there to sample "
            "yet; give the first map the budget"
        )
    basis: CostBasis | None = None
    figures: dict[str, Any] | None = None
    if options.budget is not None and args is not None:
        held = budget_check(
            func, function_bytes, args, kwargs, options, backend, options.budget, queue
        )
        basis, figures = held.basis(), held.summary()
    else:
        basis = default_basis(backend, options, queue, len(bounds))
    here = backend.check_environment(environment.modules_used(func))  # the worker checks too

    # ---- the run goes to the store, then one job to Batch
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    if schedule is not None:
        run_id = f"schedule-{schedule['name']}-{uuid.uuid4().hex[:8]}"
    fname = getattr(func, "__qualname__", type(func).__name__)
    manifest: dict[str, Any] = {
        "id": run_id,
        "name": options.name or fname,
        "function": f"{getattr(func, '__module__', '?')}.{fname}",
        "codeHash": code_hash(func, function_bytes),
        "created": int(time.time() * 1000),
        "n": n,
        "chunksize": bounds[0][1] - bounds[0][0],  # every chunk but the last has this many
        "arguments": f"results of map {source.name}" if source else summary(args or []),
        "source": source.id if source else None,
        "parent": {"run": parent[0].id, "indices": parent[1]} if parent else None,
        "kwargs": kwargs_bytes is not None,
        "parameters": parameter_names(func),  # the frame's columns
        "retryOn": list(options.retry_on),
        "environment": here,
        "options": {
            "vcpus": options.vcpus,
            "memoryMiB": options.memory_mib,
            "gpus": options.gpus,
            "queue": queue,
            "retries": options.retries,
            "timeout": options.timeout,
            "env": options.env,
            "maxFailures": options.max_failures,
            "budget": options.budget,
            "timeoutPerInput": options.timeout_per_input,
            "secrets": options.secrets,  # names and ARNs: the values never leave their store
        },
        "reuseKey": key,
        "cost": {"basis": basis.to_json() if basis else None, "estimate": figures},
    }
    store = backend.store
    parts, manifest["payload"] = pack_payload(
        function_bytes, kwargs_bytes or b"", inputs_bytes, offsets, sources(filenames)
    )
    store.put(run_key(run_id, "payload.bin"), parts)
    request = _job_request(backend, manifest, store.url, list(options.depends_on), source)
    manifest["jobName"] = request["jobName"]
    if schedule is not None:  # stored once; each firing submits ``request``
        manifest["schedule"] = schedule
        request["tags"][SCHEDULE_TAG] = schedule["name"]
        store.put(run_key(run_id, "run.json"), to_json(manifest))
        return backend, {**manifest, "request": request}
    store.put(run_key(run_id, "run.json"), to_json(manifest))  # the workers read it: first
    ledger = {k: manifest[k] for k in LEDGER_FIELDS} | {"jobId": None}
    record_run(store, ledger)  # pending: a client killed before the next line still finds it
    if key is not None:
        record_reusable(store, key, run_id)
    try:
        manifest["jobId"] = ledger["jobId"] = backend.batch.submit_job(**request)["jobId"]
    except Exception:
        store.delete(f"runs/{run_id}/")  # nothing was accepted: leave nothing behind
        store.delete(ledger_key(run_id))
        raise
    record_run(store, ledger)
    return backend, manifest


def _reusable(backend: Backend, manifest: dict[str, Any]) -> bool:
    """Whether a stored run may stand for a new one: submitted, and running or succeeded."""
    if not manifest.get("jobId"):
        return False
    found = backend.describe([manifest["jobId"]])
    return bool(found) and found[0]["status"] != "FAILED"


# Attempts a map's job gets beyond its inputs' retries, for failures that are not theirs
INFRA_ATTEMPTS = 3


def retry_strategy(retries: int) -> dict[str, Any]:
    """A map's Batch retry strategy: the worker counts each input's failures against
    ``retries`` and exits EXIT_FINAL once no input may run again (or the interpreter is not
    the one the run was pickled for); an attempt lost with its host ("Host EC2 ...
    terminated") is retried whatever the count, from a budget of INFRA_ATTEMPTS more; one
    the worker did not end (killed for memory, by a signal) is not: it would end so again."""
    return {
        "attempts": min(MAX_ATTEMPTS, retries + 1 + INFRA_ATTEMPTS),
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onExitCode": str(EXIT_FINAL), "action": "EXIT"},
            {"onExitCode": str(EXIT_FAILED), "action": "RETRY"},
            {"onExitCode": str(EXIT_STORE), "action": "RETRY"},
            {"onExitCode": "*", "action": "EXIT"},
        ],
    }


def _job_request(
    backend: Backend,
    manifest: dict[str, Any],
    store_url: str,
    dependencies: list[str],
    source: Run | None,
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
        "jobDefinition": backend.job_definition(opts.get("secrets")),
        "containerOverrides": {
            "resourceRequirements": resources,
            "environment": [
                {"name": k, "value": v}
                for k, v in {**backend.worker_environment(), **opts["env"]}.items()
            ],
        },
        "retryStrategy": retry_strategy(opts["retries"]),
        "tags": {
            RUN_TAG: manifest["id"],
            "batchbook:function": manifest["function"][:256],
            "batchbook:user": _user(),
        },
    }
    command, parameters = backend.runner_command(store_url, manifest["id"])
    if command:
        request["containerOverrides"]["command"] = command
    if parameters:
        request["parameters"] = parameters
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


def parameter_names(func: Any) -> list[str] | None:
    """The names of the positional parameters of ``func`` (None: it has no signature, or
    takes ``*args``)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _user() -> str:
    """Who submitted (a tag on the job: whose it is, on a shared account)."""
    import getpass

    try:
        return getpass.getuser()[:256] or "unknown"
    except (OSError, KeyError):
        return "unknown"


def _job_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-_")
    return (cleaned or "map")[:128]


def _parallelism(backend: Backend, queue: str, vcpus: float) -> int:
    """How many chunks the queue's compute environments run at once."""
    return max(1, int(backend.queue_vcpus(queue) // vcpus))


def resubmit(job: Run, indices: list[int], **options: Any) -> tuple[Backend, dict[str, Any]]:
    """A new run of ``job``'s function over just ``indices`` (for MapJob.retry_failed)."""
    import pickle

    inputs = job.inputs()
    layout = job.manifest["payload"]
    func = pickle.loads(read_part(job.backend.store, job.manifest, layout["function"]))
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
        "secrets": opts.get("secrets") or None,
        "name": f"{job.name}-retry",
        **options,
    }
    kwargs = {}
    if job.manifest.get("kwargs"):
        kwargs = pickle.loads(read_part(job.backend.store, job.manifest, layout["kwargs"]))
    return submit_run(
        func,
        [inputs[i] for i in indices],
        kwargs,
        RunOptions.from_user(merged),
        parent=(job, indices),
        backend=job.backend,
    )
