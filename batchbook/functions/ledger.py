"""The ledger: one line per submitted run (id, job id, name, function, code hash, inputs,
time) in ``ledger.jsonl`` at the store's root, and a line per deleted one. ``batch.jobs()``
lists the runs it holds, ``batch.attach()`` gives one back after a kernel restart (both in
:mod:`batchbook.functions.api`)."""

from __future__ import annotations

import json
from typing import Any

LEDGER = "ledger.jsonl"


def append_ledger(store: Any, entries: list[dict[str, Any]]) -> None:
    """Add lines to the ledger, all in one append (see read_ledger)."""
    store.append(LEDGER, [json.dumps(entry).encode() + b"\n" for entry in entries])


def read_ledger(store: Any) -> tuple[list[dict[str, Any]], set[str]]:
    """The ledger lines of the runs that are still stored, and the ids of the deleted ones.

    A run's line is written when it is submitted; MapJob.delete adds {"id", "deleted"}. A
    torn last line (a crash mid-write) is skipped.
    """
    try:
        lines = store.get(LEDGER).splitlines()
    except FileNotFoundError:
        return [], set()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    deleted = {e["id"] for e in entries if "deleted" in e}
    return [e for e in entries if "deleted" not in e and e["id"] not in deleted], deleted
