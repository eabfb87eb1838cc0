"""The job state machine's rules, checked: which status changes Batch makes, and what holds
between steps.

Every status change goes through :func:`check_transition`; one Batch never makes raises
a ServerError (a fault of the engine, not of the request) with the job's history. The
engine's tests run :meth:`Engine.check_invariants` after every step.
"""

from __future__ import annotations

from collections import Counter

from batchbook.engine.jobs import JobState
from batchbook.engine.resources import NONE, Resources
from batchbook.errors import ServerError
from batchbook.vocabulary import ACTIVE, FINAL, STATUSES

# A job that runs (a plain job, an array child): status -> the statuses it may move to.
JOB = {
    "SUBMITTED": frozenset({"PENDING", "FAILED"}),  # FAILED: cancelled before it was admitted
    "PENDING": frozenset({"RUNNABLE", "FAILED"}),  # FAILED: cancelled, or a dependency failed
    "RUNNABLE": frozenset({"STARTING", "FAILED"}),  # FAILED: cancelled or terminated
    "STARTING": frozenset({"RUNNING", "RUNNABLE", "FAILED"}),  # lost before it ran: retried or not
    "RUNNING": frozenset({"SUCCEEDED", "FAILED", "RUNNABLE"}),  # RUNNABLE: the retry
    "SUCCEEDED": frozenset(),
    "FAILED": frozenset(),
}
# An array parent: it reports SUBMITTED, PENDING, then SUCCEEDED or FAILED once every child is final.
ARRAY_PARENT = {
    "SUBMITTED": frozenset({"PENDING", "FAILED"}),
    "PENDING": frozenset({"SUCCEEDED", "FAILED"}),
    "SUCCEEDED": frozenset(),
    "FAILED": frozenset(),
}


# A child node of a multi-node job: a job, that also waits again (PENDING) for its job's
# next attempt when the main node is retried, from wherever it is.
CHILD_NODE = {
    status: allowed | ({"PENDING"} if status not in ("SUBMITTED", "PENDING") else set())
    for status, allowed in JOB.items()
}
# A multi-node job moves as its main node does: JOB's table.


def check_transition(job: JobState, status: str) -> None:
    """ServerError, with the job's history, unless Batch moves such a job from its status to ``status``."""
    if job.is_array_parent:
        table, kind = ARRAY_PARENT, "an array parent"
    elif job.node is not None and not job.is_main_node:
        table, kind = CHILD_NODE, "a child node"
    else:
        table, kind = JOB, "a job"
    if status not in table.get(job.status, ()):
        raise ServerError(
            f"job {job.id}: {job.status} -> {status} is not a Batch transition ({kind}); "
            f"{history(job)}"
        )


def history(job: JobState) -> str:
    """What the job went through, in a line: created, each attempt, where it is now."""
    parts = [f"created at {job.created_at}"]
    for number, attempt in enumerate(job.attempts, 1):
        code = attempt.get("container", {}).get("exitCode")
        parts.append(f"attempt {number}: {attempt.get('statusReason')} (exit code {code})")
    if job.task is not None:
        parts.append(f"attempt {job.task.number} in flight (task {job.task.task_id})")
    parts.append(f"now {job.status}" + (f": {job.status_reason}" if job.status_reason else ""))
    return "; ".join(parts)


def check_invariants(
    jobs: dict[str, JobState],
    tasks: dict[str, JobState],
    runnable_queues: dict[str, dict[str, JobState]],
    in_use: dict[str, Resources],
) -> None:
    """ServerError naming the first thing that does not hold:

    - an array parent's statusSummary counts its children by status;
    - the resources in use on each compute environment are those of the attempts in flight;
    - an attempt is in flight exactly for the STARTING and RUNNING jobs, and none for final ones;
    - the runnable queues hold exactly the RUNNABLE jobs, each in its own queue.
    """
    used: dict[str, Resources] = {}
    runnable = {job_id for queue in runnable_queues.values() for job_id in queue}
    for job in jobs.values():
        if job.is_multinode_parent:
            main = job.main_node
            if main is None or job.status != main.status:
                _broken(job, "a multi-node job has its main node's status")
            continue
        if job.is_parent:
            counts = Counter(child.status for child in job.children)
            if job.summary != {s: counts.get(s, 0) for s in STATUSES}:
                _broken(job, f"statusSummary {job.summary} is not its children's {dict(counts)}")
            continue
        in_flight = tasks.get(job.task.task_id) if job.task else None
        if (job.status in ACTIVE) != (job.task is not None) or (job.task and in_flight is not job):
            _broken(job, "an attempt is in flight exactly while a job is STARTING or RUNNING")
        if job.task is not None:
            used[job.ce or ""] = used.get(job.ce or "", NONE) + job.spec.resources
        if (job.status == "RUNNABLE") != (job.id in runnable):
            _broken(job, "the runnable queues hold exactly the RUNNABLE jobs")
        if job.status == "RUNNABLE" and job.id not in runnable_queues.get(job.spec.queue, {}):
            _broken(job, f"it is RUNNABLE but not in its queue {job.spec.queue}'s")
        if job.status in FINAL and job.stopped_at is None:
            _broken(job, "a final job has its stoppedAt")
    for ce in used.keys() | in_use.keys():
        if used.get(ce, NONE) != in_use.get(ce, NONE):
            raise ServerError(
                f"compute environment {ce!r}: {in_use.get(ce, NONE).describe()} counted in use, "
                f"but the attempts in flight hold {used.get(ce, NONE).describe()}"
            )
    if len(tasks) != sum(1 for j in jobs.values() if j.task is not None):
        raise ServerError("an attempt in flight belongs to no job")


def _broken(job: JobState, what: str) -> None:
    raise ServerError(f"job {job.id}: invariant broken: {what}; {history(job)}")
