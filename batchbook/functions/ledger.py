"""The ledger: one object per run, ``ledger/<run id>.json``, written when it is submitted
(id, job id, name, function, code hash, inputs, time) and replaced by a tombstone when it
is deleted. ``batch.jobs()`` lists the runs it holds, ``batch.attach()`` gives one back
after a kernel restart (both in :mod:`batchbook.functions.api`)."""

from __future__ import annotations

import json
from typing import Any

from batchbook.functions.objects import ObjectStore

LEDGER = "ledger/"


def ledger_key(run_id: str) -> str:
    return f"{LEDGER}{run_id}.json"


def record_run(store: ObjectStore, entry: dict[str, Any]) -> None:
    """The run's ledger object (its id in ``entry["id"]``)."""
    store.put(ledger_key(entry["id"]), json.dumps(entry).encode())


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
