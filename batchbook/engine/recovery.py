"""Rebuilding the engine's job state from its persisted records, after a restart. Pure."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from batchbook.engine.jobs import JobState, parent_id
from batchbook.engine.resources import NONE, Resources
from batchbook.vocabulary import ACTIVE, STATUSES


@dataclass
class Rebuilt:
    """The engine's job state as the records say it was."""

    jobs: dict[str, JobState] = field(default_factory=dict)
    seq: int = 0
    submitted: deque[JobState] = field(default_factory=deque)
    runnable: dict[str, dict[str, JobState]] = field(default_factory=dict)  # queue -> FIFO
    tasks: dict[str, JobState] = field(default_factory=dict)  # task id -> job
    used: dict[str, Resources] = field(default_factory=dict)  # compute environment -> in use
    started: list[JobState] = field(default_factory=list)  # attempts running: their timers


def rebuild(records: Iterable[tuple[str, dict[str, Any]]]) -> Rebuilt:
    """The state of the jobs in ``records`` (parents before their children)."""
    out = Rebuilt()
    for job_id, rec in records:
        parent_ref = parent_id(job_id)
        parent = out.jobs[parent_ref] if parent_ref else None
        job = JobState.from_record(job_id, rec, parent)
        out.jobs[job_id] = job
        out.seq = max(out.seq, job.seq)
        if parent is not None:
            parent.children.append(job)
    for job in out.jobs.values():
        if job.is_multinode_parent:
            job.children.sort(key=lambda c: c.node or 0)
        elif job.is_parent:
            job.children.sort(key=lambda c: c.index or 0)
            job.summary = dict.fromkeys(STATUSES, 0)
            for child in job.children:
                job.summary[child.status] += 1
        if job.status == "SUBMITTED" and job.parent is None:
            out.submitted.append(job)
        elif job.status == "RUNNABLE" and not job.is_parent:
            out.runnable.setdefault(job.spec.queue, {})[job.id] = job
        elif job.status in ACTIVE and job.task is not None:
            out.tasks[job.task.task_id] = job
            out.used[job.ce or ""] = out.used.get(job.ce or "", NONE) + job.spec.resources
            if job.task.started_at and job.task.stop_kind is None:
                out.started.append(job)
    for queue in out.runnable.values():
        ordered = sorted(queue.values(), key=lambda j: j.seq)
        queue.clear()
        queue.update((j.id, j) for j in ordered)
    return out
