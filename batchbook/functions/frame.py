"""What ``MapJob.to_frame()`` is made of: its columns and their dtypes, a column per
parameter, and how errors and waiting reasons read in it."""

from __future__ import annotations

from typing import Any

from batchbook.errors import JobFailed, RemoteError
from batchbook.vocabulary import NEVER_STARTS

# to_frame's columns and the dtype each is built with (object: values exactly as they are)
FRAME_COLUMNS = (
    ("input", "object"),
    ("result", "object"),
    ("status", "object"),
    ("error", "object"),
    ("traceback", "object"),
    ("attempts", "int64"),
    ("started", "datetime"),  # from epoch ms; None -> NaT
    ("stopped", "datetime"),
    ("duration", "float64"),
    ("peak_memory_mib", "float64"),
    ("cost", "float64"),  # USD, estimated: its share of its attempts (see MapJob.cost)
    ("log_stream", "object"),
    ("job_id", "object"),
)


def column_names(parameters: list[str] | None, width: int) -> list[str]:
    """The frame's column for each argument of an input: the function's parameter names
    (recorded at submission), else ``arg0``, ``arg1``, ... (no signature, ``*args``, or a
    name the frame already uses)."""
    taken = {name for name, _ in FRAME_COLUMNS}
    if parameters and len(parameters) >= width and not taken & set(parameters[:width]):
        return parameters[:width]
    return [f"arg{i}" for i in range(width)]


def describe_error(error: Exception | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, RemoteError):
        return f"{error.type_name}: {error.message}"
    reason = str(error).split(": ", 1)[-1]  # without "input <i>: "
    return reason if isinstance(error, JobFailed) else f"{type(error).__name__}: {reason}"


def never_starts(status: str, detail: dict[str, Any] | None) -> str | None:
    """``cannot start: <reason>`` for a waiting input whose child Batch will never start."""
    reason = (detail or {}).get("statusReason") or ""
    return (
        f"cannot start: {reason}"
        if status == "RUNNABLE" and reason.startswith(NEVER_STARTS)
        else None
    )
