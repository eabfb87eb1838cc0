"""A schedule's firing becomes an ordinary run, made by the worker that runs it.

A schedule stores its function and inputs once, as a template run (``runs/<template>/``,
with a ``schedule`` entry in its manifest, never in the ledger). Every firing submits the
same job, naming the template. The first of its chunks to start makes the firing's own run:
its id is the job's (``AWS_BATCH_JOB_ID`` without the array index), its manifest the
template's with that id, job id and time, reading the template's payload (``payloadOf``),
and its ledger object, so ``batch.jobs()`` and ``batch.attach()`` find it as any other run.
Chunks that start together may each write the manifest: the same but for its creation time,
so it does not matter which comes first. A firing whose job never starts has no run (the
local service lists it on its schedule; on AWS, Batch has the job).
"""

from __future__ import annotations

import json
import time
from typing import Any

from batchbook.errors import ClientError
from batchbook.functions.ledger import LEDGER_FIELDS, ledger_key, record_run
from batchbook.functions.objects import ObjectStore
from batchbook.functions.payload import run_key, to_json

SCHEDULE_TAG = "batchbook:schedule"  # every firing's job carries its schedule's name


def firing_run(store: ObjectStore, template: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The manifest of the run that job ``job_id`` (a firing of ``template``'s schedule)
    is; made, with its ledger object, by the first chunk to ask."""
    if not job_id:
        raise ClientError("a schedule's run starts as a Batch job only (AWS_BATCH_JOB_ID is unset)")
    run_id = job_id.split(":")[0]  # an array child's id is its parent's, then its index
    key = run_key(run_id, "run.json")
    try:
        return dict(json.loads(bytes(store.get(key))))
    except FileNotFoundError:
        pass
    manifest = {
        **{k: v for k, v in template.items() if k != "schedule"},
        "id": run_id,
        "jobId": run_id,
        "created": int(time.time() * 1000),
        "payloadOf": template["id"],
        "firing": {"schedule": template["schedule"]["name"], "template": template["id"]},
    }
    store.put(key, to_json(manifest))
    if not _listed(store, run_id):
        entry = {k: manifest[k] for k in LEDGER_FIELDS}
        schedule = template["schedule"]["name"]
        record_run(
            store, {**entry, "jobId": run_id, "schedule": schedule, "template": template["id"]}
        )
    return manifest


def _listed(store: ObjectStore, run_id: str) -> bool:
    try:
        store.get(ledger_key(run_id))
    except FileNotFoundError:
        return False
    return True
