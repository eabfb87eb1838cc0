"""The ledger: one object per run, ``ledger/<run id>.json`` (id, job id, name, function,
code hash, inputs, time), replaced by a tombstone when the run is deleted. ``batch.jobs()``
lists the runs it holds, ``batch.attach()`` gives one back after a kernel restart (both in
:mod:`batchbook.functions.api`).

The entry is written before SubmitJob, without a job id (pending), and again with it after:
a client killed in between leaves a pending entry, which :func:`settle_pending` completes
from Batch's side (the job's ``batchbook:run`` tag names the run)."""

from __future__ import annotations

import json
from typing import Any

from batchbook.functions.objects import ObjectStore
from batchbook.functions.payload import run_key
from batchbook.vocabulary import every_page

RUN_TAG = "batchbook:run"  # every map's job carries its run id in this tag

LEDGER = "ledger/"
# What the ledger keeps of a run (and its job id)
LEDGER_FIELDS = (
    "id",
    "name",
    "function",
    "codeHash",
    "created",
    "n",
    "arguments",
    "source",
    "parent",
)


def ledger_key(run_id: str) -> str:
    return f"{LEDGER}{run_id}.json"


def record_run(store: ObjectStore, entry: dict[str, Any]) -> None:
    """The run's ledger object (its id in ``entry["id"]``)."""
    store.put(ledger_key(entry["id"]), json.dumps(entry).encode())


def settle_pending(backend: Any, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` with the job id of each pending one found on Batch (and written back);
    a pending entry whose job Batch does not have keeps ``jobId`` None: never submitted."""
    for entry in entries:
        if entry.get("jobId") is None:
            job_id = _find_job(backend, entry["id"])
            if job_id is not None:
                entry["jobId"] = job_id
                record_run(backend.store, entry)
    return entries


def _find_job(backend: Any, run_id: str) -> str | None:
    """The job of run ``run_id``: among its queue's jobs of its name, the one tagged with it."""
    try:
        manifest = json.loads(bytes(backend.store.get(run_key(run_id, "run.json"))))
    except FileNotFoundError:
        return None
    named = every_page(
        backend.batch.list_jobs,
        "jobSummaryList",
        jobQueue=manifest["options"]["queue"],
        filters=[{"name": "JOB_NAME", "values": [manifest["jobName"]]}],
    )
    ids = [j["jobId"] for j in named]
    for job in backend.describe(ids):
        if job.get("tags", {}).get(RUN_TAG) == run_id:
            return str(job["jobId"])
    return None


def record_deleted(store: ObjectStore, run_ids: list[str], at: int) -> None:
    """Tombstones for deleted runs: attach() can then say so, and jobs() skips them."""
    for run_id in run_ids:
        store.put(ledger_key(run_id), json.dumps({"id": run_id, "deleted": at}).encode())


def read_ledger(store: ObjectStore) -> tuple[list[dict[str, Any]], set[str]]:
    """The ledger entries of the runs that are still stored, and the ids of the deleted ones."""
    entries = []
    for key, _ in store.list(LEDGER):
        try:
            entries.append(json.loads(bytes(store.get(key))))
        except (FileNotFoundError, ValueError):  # deleted meanwhile, or not one of ours
            continue
    deleted = {e["id"] for e in entries if "deleted" in e}
    return [e for e in entries if "deleted" not in e], deleted
