"""Re-running a cell does not pay twice: ``batch.map(..., reuse=True)`` (the default of
``%%batch``) gives back the run of the same code, inputs and options that is running or
succeeded, instead of submitting it again.

The key hashes the function's source (or, without one, its pickle), the values its
closure and defaults hold, the source of the by-value modules and files it uses, its
keyword arguments, the inputs as pickled for the store, and the options that change what
runs (sizes, queue, chunks, retries, timeouts, environment, dependencies). One object per
key, ``reuse/<key>.json``, names the latest run made with it: a lookup is one read.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import pickle
from typing import Any

from batchbook.functions.ledger import ledger_key
from batchbook.functions.objects import ObjectStore
from batchbook.functions.options import RunOptions
from batchbook.functions.payload import run_key

PREFIX = "reuse/"


def reuse_key(
    func: Any,
    function_bytes: bytes,
    sources: dict[str, str],
    kwargs_bytes: bytes | None,
    inputs: bytes | str,
    options: RunOptions,
    queue: str,
    chunksize: int,
) -> str:
    """The hash a run is found again by (see the module)."""
    digest = hashlib.sha256()

    def part(data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        digest.update(len(raw).to_bytes(8, "big") + raw)

    part(_code_identity(func, function_bytes))
    part(json.dumps(sources, sort_keys=True))
    part(kwargs_bytes or b"")
    part(inputs)
    part(
        json.dumps(
            [
                options.vcpus,
                options.memory_mib,
                options.gpus,
                queue,
                chunksize,
                options.retries,
                list(options.retry_on),
                options.timeout,
                options.timeout_per_input,
                sorted(options.env.items()),
                list(options.depends_on),
                sorted(options.secrets.items()),
                options.max_failures,
                options.budget,
            ]
        )
    )
    return digest.hexdigest()[:32]


def _code_identity(func: Any, function_bytes: bytes) -> bytes:
    """What the function is, for reuse: its source and the values it holds; a partial's
    function and arguments (one with ``reuse_identity()``, as %%batch's cell has, says
    itself what it is: the cell's text and values, not its execution count)."""
    if isinstance(func, functools.partial):
        held = [a.reuse_identity() if hasattr(a, "reuse_identity") else a for a in func.args]
        try:
            return _code_identity(func.func, b"") + pickle.dumps(
                (held, sorted(func.keywords.items())), protocol=5
            )
        except Exception:
            return function_bytes
    try:
        closure = [c.cell_contents for c in getattr(func, "__closure__", None) or ()]
        values = pickle.dumps((closure, getattr(func, "__defaults__", None)), protocol=5)
        return inspect.getsource(func).encode() + values
    except Exception:  # no source (a lambda in a REPL), or unpicklable values
        return function_bytes


def record_reusable(store: ObjectStore, key: str, run_id: str) -> None:
    store.put(f"{PREFIX}{key}.json", json.dumps({"run": run_id}).encode())


def reusable_run(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """The manifest of the latest run made with ``key``, if it is still stored."""
    try:
        run_id = json.loads(bytes(store.get(f"{PREFIX}{key}.json")))["run"]
        manifest: dict[str, Any] = json.loads(bytes(store.get(run_key(run_id, "run.json"))))
        if "jobId" not in manifest:  # written before SubmitJob answered: the ledger has it
            manifest["jobId"] = json.loads(bytes(store.get(ledger_key(run_id))))["jobId"]
    except (FileNotFoundError, ValueError, KeyError):
        return None
    return manifest
