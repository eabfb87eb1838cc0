"""The AWS Batch terms every layer shares, written once.

Statuses and the final set, the reason strings AWS users recognise, the service limits,
the CloudWatch Logs group, paging tokens and resource names. The engine, the server,
the function layer and (later) the AWS backend all read them from here, so none copies
another's and the server need not reach into the engine. Pure data and small functions.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any, Final, Literal

from batchbook.errors import ClientError

Status = Literal["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
STATUSES: Final[tuple[Status, ...]] = (
    "SUBMITTED",
    "PENDING",
    "RUNNABLE",
    "STARTING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
)
FINAL: Final = frozenset(("SUCCEEDED", "FAILED"))
ACTIVE: Final = frozenset(("STARTING", "RUNNING"))  # an attempt is in flight
CANCELLABLE: Final = frozenset(("SUBMITTED", "PENDING", "RUNNABLE"))  # CancelJob still acts

# ---------------------------------------------------------------- reasons, as AWS words them
ESSENTIAL_EXITED = "Essential container in task exited"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
DEPENDENCY_FAILED = "Dependent Job failed"
CHILD_FAILED = "Array Child Job failed"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
MAIN_NODE_EXITED = "Main node exited; the multi-node job is finished"
HOST_LOST = "Host EC2 (instance local) terminated."
# What a RUNNABLE job's statusReason starts with when it can never start as it is
NEVER_STARTS = ("MISCONFIGURATION:",)
SPOT_SHORT_REASON = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested "
    "for instance type [{types}]"
)
MISFIT_REASON = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement ({need}) is higher "
    "than that can be met by the CE(s) attached to the job queue ({have})."
)

# The last line the local engine writes to the log stream of an attempt it killed for memory
# (AWS's OOM reason gives neither the limit nor what was used).
OOM_LOG_LINE = "batchbook: killed for memory: it used {used} MiB, over its limit of {limit} MiB"
_OOM_LOG_RE = re.compile(
    re.escape(OOM_LOG_LINE).replace(r"\{used\}", r"(\d+)").replace(r"\{limit\}", r"(\d+)")
)


def oom_usage(line: str) -> tuple[int, int] | None:
    """(used MiB, limit MiB) from an OOM_LOG_LINE, or None for any other line."""
    m = _OOM_LOG_RE.fullmatch(line)
    return (int(m.group(1)), int(m.group(2))) if m else None


# ---------------------------------------------------------------- logs
LOG_GROUP = "/aws/batch/job"  # CloudWatch Logs group of every attempt's log stream


def log_stream_name(job_definition_name: str, task_id: str) -> str:
    return f"{job_definition_name}/default/{task_id}"


# ---------------------------------------------------------------- limits the service enforces
ARRAY_SIZE: Final = (2, 10_000)
MAX_ATTEMPTS: Final = 10
MAX_DEPENDS_ON: Final = 20
MAX_DESCRIBE_JOBS: Final = 100  # job ids per DescribeJobs
MAX_SUBMIT_BYTES: Final = 30 * 1024  # of a SubmitJob request's JSON
MAX_TAGS: Final = 50


def check_range(field: str, value: int | float | None, low: float, high: float) -> None:
    """ClientError naming ``field`` and the allowed range, unless ``value`` is in it (or None)."""
    if value is not None and not low <= value <= high:
        raise ClientError(f"{field}: {value} is out of range; allowed {low:g} to {high:g}")


# ---------------------------------------------------------------- names and ARNs
def name_of(ref: str) -> str:
    """What follows the last ``/`` of an ARN (a name, or name:revision); a bare name as it is."""
    return ref.rsplit("/", 1)[-1]


# ---------------------------------------------------------------- paging tokens
def paginate(
    items: list[Any],
    max_results: int | None,
    next_token: str | None,
    limit: int,
    names: tuple[str, str] = ("maxResults", "nextToken"),  # as the API spells them
) -> tuple[list[Any], str | None]:
    """Slice ``items`` by an opaque offset token; return the page and the next token."""
    check_range(names[0], max_results, 1, limit)
    start = 0
    if next_token:
        try:
            start = int(base64.urlsafe_b64decode(next_token.encode()).decode())
        except ValueError:
            raise ClientError(
                f"{names[1]}: {next_token!r:.60} is not a token this service issued"
            ) from None
    size = max_results or limit
    page = items[start : start + size]
    more = start + size < len(items)
    token = base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None
    return page, token


def every_page(
    call: Callable[..., Any], key: str, token: str = "nextToken", **request: Any
) -> list[Any]:
    """Every item a paged list call gives (``call(**request)[key]``), page after page;
    ``token``: the API's name for its next-page token."""
    out: list[Any] = []
    while True:
        page = call(**request)
        out += page[key]
        if not page.get(token):
            return out
        request[token] = page[token]


def with_token(out: dict[str, Any], token: str | None) -> dict[str, Any]:
    """``out`` with ``nextToken`` set when there is one."""
    if token:
        out["nextToken"] = token
    return out


# EventBridge Scheduler's universal target for Batch's SubmitJob: a schedule's Input is the
# SubmitJob request, its member names as the SDKs spell them (validation.sdk_input)
SUBMIT_JOB_TARGET = "arn:aws:scheduler:::aws-sdk:batch:submitJob"
SCHEDULE_GROUP = "batchbook"  # EventBridge Scheduler's group of every batch.schedule
# a schedule's (or schedule group's) name, as EventBridge Scheduler's model allows it
SCHEDULE_NAME = re.compile(r"[0-9A-Za-z_.-]{1,64}")
