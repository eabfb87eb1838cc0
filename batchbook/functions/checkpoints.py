"""``batch.checkpoint(obj)`` and ``batch.restore(default)``: inside a mapped function, keep
the state of the input's work in the store (``runs/<run>/checkpoints/<input>.pkl``, the
latest one) and get it back, so a retried attempt (after a timeout, an OOM kill, a spot
interruption) and ``retry_failed()`` resume instead of starting over.

The worker says which input runs (``working_on``); a retry_failed() run looks in the run
it retries when it has no checkpoint of its own for the input yet.
"""

from __future__ import annotations

import pickle
from typing import Any

from batchbook.errors import ClientError
from batchbook.functions.objects import ObjectStore
from batchbook.functions.payload import run_key
from batchbook.functions.pickling import dumps

_WORKER: dict[str, Any] = {}  # store, manifest: set once per chunk by the worker
_INPUT = [0]  # the input running now (the worker's hot loop sets it: a list store)


def working_on(store: ObjectStore, manifest: dict[str, Any]) -> list[int]:
    """The worker runs inputs of this run: the list whose [0] it sets to each one's index."""
    _WORKER.update(store=store, manifest=manifest)
    return _INPUT


def checkpoint_key(run_id: str, index: int) -> str:
    return run_key(run_id, f"checkpoints/{index}.pkl")


def checkpoint(obj: Any) -> None:
    """Keep ``obj`` as this input's checkpoint (replacing the one before)."""
    store, manifest = _bound("checkpoint")
    store.put(checkpoint_key(manifest["id"], _INPUT[0]), dumps(obj, "the checkpoint"))


def restore(default: Any = None) -> Any:
    """This input's latest checkpoint (or, in a retry_failed() run, the run it retries'),
    else ``default``."""
    store, manifest = _bound("restore")
    run_id, index = manifest["id"], _INPUT[0]
    while True:
        try:
            return pickle.loads(store.get(checkpoint_key(run_id, index)))
        except FileNotFoundError:
            parent = manifest.get("parent")
            if not parent:
                return default
            run_id, index = parent["run"], parent["indices"][index]
            manifest = _manifest(store, run_id)


def _manifest(store: ObjectStore, run_id: str) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(bytes(store.get(run_key(run_id, "run.json"))))
    return data


def _bound(what: str) -> tuple[ObjectStore, dict[str, Any]]:
    store, manifest, _ = bound_input(what)
    return store, manifest


def bound_input(what: str) -> tuple[ObjectStore, dict[str, Any], int]:
    """(store, manifest, index) of the input running now; ClientError outside a worker."""
    if not _WORKER:
        raise ClientError(
            f"batch.{what}(): only inside a function batch.map runs (on its worker), for the "
            "input it runs"
        )
    return _WORKER["store"], _WORKER["manifest"], _INPUT[0]
