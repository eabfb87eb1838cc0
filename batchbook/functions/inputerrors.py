"""What an input that has no value reads as: the function's exception (RemoteError), a
failure of batchbook's own (SerializationError, EnvironmentMismatch), or why its job ended
without it (JobFailed: cancelled, timed out, killed for memory, the store unreadable)."""

from __future__ import annotations

import math
from typing import Any

from batchbook.errors import (
    BatchbookError,
    EnvironmentMismatch,
    JobFailed,
    RemoteError,
    SerializationError,
)
from batchbook.functions.payload import Outcome
from batchbook.functions.runstate import RunState
from batchbook.functions.worker import EXIT_STORE
from batchbook.vocabulary import ESSENTIAL_EXITED, FINAL, LOG_GROUP, OOM_REASON, oom_usage

# the worker's failures of batchbook's own, by stage: the result could not be pickled, the
# worker does not run the interpreter the function was pickled in
STAGE_ERRORS: dict[Any, type[BatchbookError]] = {
    "result": SerializationError,
    "environment": EnvironmentMismatch,
}


def input_error(
    job: RunState, index: int, status: str, outcome: Outcome | None, detail: dict[str, Any] | None
) -> Exception:
    """The exception input ``index`` of ``job`` raises (``status`` is its status now)."""
    if outcome is not None and not outcome.ok:
        e = outcome.error()
        stage = STAGE_ERRORS.get(e.get("stage"))  # batchbook's own failure, not the function's
        if stage is not None:
            return stage(f"input {index}: {e['message']}")
        return RemoteError(index, e["type"], e["message"], e["traceback"])
    if status not in FINAL:
        return JobFailed(f"input {index}: not finished ({status})")
    detail = detail or job._parent
    reason = detail.get("statusReason", "no result")
    code = (detail.get("container") or {}).get("exitCode")
    if reason == ESSENTIAL_EXITED and code == EXIT_STORE:
        reason = (
            f"the worker could not read this run from the object store "
            f"{job.backend.store.url} (see .logs({index}))"
        )
    elif reason == ESSENTIAL_EXITED and code:
        reason = (
            f"the worker exited with code {code} before this input finished (see .logs({index}))"
        )
    elif reason == OOM_REASON:
        reason += _memory_used(job, detail)
    return JobFailed(f"input {index}: {reason}")


def _memory_used(job: RunState, detail: dict[str, Any]) -> str:
    """What an attempt killed for memory used, against its limit (from its log's last line)."""
    limit = job.manifest["options"]["memoryMiB"]
    stream = (detail.get("container") or {}).get("logStreamName")
    last = []
    if stream:
        last = job.backend.logs.get_log_events(
            logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=False, limit=1
        )["events"]
    usage = oom_usage(last[0]["message"]) if last else None
    if usage is None:  # AWS does not say what was used
        return f' (its limit was {limit} MiB): ask for more, e.g. memory="{2 * limit} MiB"'
    used, limit = usage
    more = 1 << math.ceil(math.log2(used * 1.2))
    return (
        f" (it used {used} MiB, over its limit of {limit} MiB): ask for more, "
        f'e.g. memory="{more} MiB"'
    )
