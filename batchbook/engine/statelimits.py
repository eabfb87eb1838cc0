"""A job queue's ``jobStateTimeLimitActions``: checked, and which blocked job they stop.

A RUNNABLE job at the head of its queue that is blocked for one of the reasons an action
names is cancelled (or terminated) once it has been RUNNABLE for ``maxTimeSeconds``, with
AWS's statusReason. Pure: the engine asks and carries out the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from batchbook.engine.jobs import JobState
from batchbook.engine.resources import Resources
from batchbook.errors import ClientError
from batchbook.vocabulary import check_range

BLOCKED_REASONS: Final = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
)
STOPPED_BY: Final = {
    "CANCEL": "Canceled by JobStateTimeLimit action due to reason: {reason}",
    "TERMINATE": "Terminated by JobStateTimeLimit action due to reason: {reason}",
}
MAX_TIME_SECONDS: Final = (600, 86_400)


def check_state_limits(actions: list[dict[str, Any]] | None, min_seconds: int) -> None:
    """ClientError naming the field, unless every action is one AWS accepts.

    ``min_seconds`` is AWS's 600 unless the engine was opened with a lower floor (tests)."""
    seen: set[str] = set()
    for i, action in enumerate(actions or []):
        where = f"jobStateTimeLimitActions[{i}]"
        reason = action["reason"]
        if reason not in BLOCKED_REASONS:
            raise ClientError(
                f"{where}.reason: {reason!r:.80} is not one of {', '.join(BLOCKED_REASONS)}"
            )
        if reason in seen:
            raise ClientError(f"{where}.reason: {reason} has an action already")
        seen.add(reason)
        if action["state"] != "RUNNABLE":
            raise ClientError(f"{where}.state: {action['state']!r} is not RUNNABLE")
        if action["action"] not in STOPPED_BY:
            raise ClientError(
                f"{where}.action: {action['action']!r} is not one of CANCEL, TERMINATE"
            )
        check_range(
            f"{where}.maxTimeSeconds", action["maxTimeSeconds"], min_seconds, MAX_TIME_SECONDS[1]
        )


def limit_for(queue: dict[str, Any], job: JobState) -> dict[str, Any] | None:
    """The action of ``queue`` that applies to ``job`` (its head), if it is blocked for its reason."""
    if job.status != "RUNNABLE" or not job.status_reason:
        return None
    for action in queue.get("jobStateTimeLimitActions") or ():
        if job.status_reason.startswith(action["reason"]):
            return action
    return None


def due_at(job: JobState, action: dict[str, Any]) -> int:
    """When (epoch ms) ``action`` stops ``job``: ``maxTimeSeconds`` after it became RUNNABLE."""
    return (job.runnable_at or job.created_at) + int(action["maxTimeSeconds"]) * 1000


def heads_to_stop(
    runnable: dict[str, dict[str, JobState]],
    queues: dict[str, dict[str, Any]],
    now: int,
    fits: Callable[[dict[str, Any], Resources], bool],
) -> tuple[list[tuple[JobState, dict[str, Any]]], list[tuple[int, str]], list[JobState]]:
    """The head jobs to stop now, with the action that stops each; the (epoch ms, job id)
    timers of the heads whose time has not come yet; and the heads whose blocking reason is
    stale (``fits``: they fit their queue's compute environments as they are now)."""
    stops, timers, stale = [], [], []
    for name, jobs in runnable.items():
        queue = queues.get(name)
        if not jobs or not queue or not queue.get("jobStateTimeLimitActions"):
            continue
        head = next(iter(jobs.values()))
        action = limit_for(queue, head)
        if action is None:
            continue
        if fits(queue, head.spec.resources):
            stale.append(head)
        elif due_at(head, action) > now:
            timers.append((due_at(head, action), head.id))
        else:
            stops.append((head, action))
    return stops, timers, stale


def stop_reason(action: dict[str, Any]) -> str:
    return STOPPED_BY[action["action"]].format(reason=action["reason"])
