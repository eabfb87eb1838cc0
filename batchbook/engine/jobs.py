"""Jobs: what was submitted (JobSpec, shared by an array's children) and how it is going (JobState)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from batchbook.engine.resources import Resources
from batchbook.engine.retry import RetryStrategy
from batchbook.errors import ClientError
from batchbook.vocabulary import FINAL

_REF = re.compile(r"Ref::([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class JobSpec:
    """The immutable part of a submitted job; one object serves all children of an array."""

    request: dict[str, Any]  # the validated SubmitJob request
    queue: str  # queue name
    job_definition_arn: str
    resources: Resources
    retry: RetryStrategy
    timeout_seconds: int | None
    array_size: int | None

    @property
    def name(self) -> str:
        return self.request["jobName"]

    def to_record(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "queue": self.queue,
            "jobDefinitionArn": self.job_definition_arn,
            "resources": [
                self.resources.vcpu_milli,
                self.resources.memory_mib,
                self.resources.gpus,
            ],
            "retry": self.retry.to_api(),
            "timeout": self.timeout_seconds,
            "arraySize": self.array_size,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> JobSpec:
        return cls(
            request=rec["request"],
            queue=rec["queue"],
            job_definition_arn=rec["jobDefinitionArn"],
            resources=Resources(*rec["resources"]),
            retry=RetryStrategy.from_api(rec["retry"]),
            timeout_seconds=rec["timeout"],
            array_size=rec["arraySize"],
        )


@dataclass(eq=False)
class Task:
    """The attempt in flight: launched, maybe running, maybe being stopped."""

    task_id: str
    number: int  # 1-based attempt number
    log_stream: str
    pid: int | None = None
    pid_start: int | None = None  # process start time, to recognise the pid after a restart
    started_at: int | None = None
    stop_reason: str | None = None  # set when we asked the process to stop
    stop_kind: str | None = None  # "timeout" or "terminate"

    def to_record(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(eq=False)
class JobState:
    id: str
    spec: JobSpec
    created_at: int
    seq: int  # FIFO order within the queue
    index: int | None = None  # array child index
    parent: JobState | None = None
    status: str = "SUBMITTED"
    status_reason: str | None = None
    started_at: int | None = None
    stopped_at: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    waiting_on: set[str] = field(default_factory=set)
    dependents: list[str] = field(default_factory=list)
    is_cancelled: bool = False
    is_terminated: bool = False
    ce: str | None = None
    task: Task | None = None
    # top-level jobs only; an array's children share the parent's
    tags: dict[str, str] = field(default_factory=dict)
    # array parents only
    children: list[JobState] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    released: bool = True  # a parent releases its children once its own dependencies are met

    @property
    def is_parent(self) -> bool:
        return self.spec.array_size is not None and self.index is None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def command(self, jobdef: dict[str, Any]) -> list[str]:
        """The container's command: the override's or the definition's, ``Ref::name`` filled in
        from SubmitJob's parameters over the definition's defaults."""
        overrides = self.spec.request.get("containerOverrides") or {}
        command = overrides.get("command") or jobdef["containerProperties"].get("command") or []
        params = {**jobdef.get("parameters", {}), **(self.spec.request.get("parameters") or {})}
        return [_REF.sub(lambda m: params.get(m.group(1), m.group(0)), arg) for arg in command]

    def defined_environment(self, jobdef: dict[str, Any]) -> dict[str, str]:
        """The definition's environment with the override's over it."""
        overrides = self.spec.request.get("containerOverrides") or {}
        return {
            e["name"]: e.get("value", "")
            for e in [
                *(jobdef["containerProperties"].get("environment") or []),
                *(overrides.get("environment") or []),
            ]
        }

    def environment(self, jobdef: dict[str, Any], attempt: int) -> dict[str, str]:
        """Everything an attempt's process gets: the defined environment and Batch's own."""
        env = self.defined_environment(jobdef)
        env["AWS_BATCH_JOB_ID"] = self.id
        env["AWS_BATCH_JOB_ATTEMPT"] = str(attempt)
        env["AWS_BATCH_JQ_NAME"] = self.spec.queue
        env["AWS_BATCH_CE_NAME"] = self.ce or ""
        if self.index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(self.index)
        return env

    def to_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "status": self.status,
            "reason": self.status_reason,
            "created": self.created_at,
            "started": self.started_at,
            "stopped": self.stopped_at,
            "seq": self.seq,
        }
        if self.attempts:
            rec["attempts"] = self.attempts
        if self.waiting_on:
            rec["waiting"] = sorted(self.waiting_on)
        if self.dependents:
            rec["dependents"] = self.dependents
        if self.is_cancelled:
            rec["cancelled"] = True
        if self.is_terminated:
            rec["terminated"] = True
        if self.ce:
            rec["ce"] = self.ce
        if self.task:
            rec["task"] = self.task.to_record()
        if self.tags:
            rec["tags"] = self.tags
        if self.parent is None:
            rec["spec"] = self.spec.to_record()
        if self.is_parent:
            rec["released"] = self.released
        return rec

    @classmethod
    def from_record(cls, job_id: str, rec: dict[str, Any], parent: JobState | None) -> JobState:
        spec = parent.spec if parent else JobSpec.from_record(rec["spec"])
        job = cls(
            id=job_id,
            spec=spec,
            created_at=rec["created"],
            seq=rec["seq"],
            index=int(job_id.rsplit(":", 1)[1]) if parent else None,
            parent=parent,
            status=rec["status"],
            status_reason=rec.get("reason"),
            started_at=rec.get("started"),
            stopped_at=rec.get("stopped"),
            attempts=rec.get("attempts", []),
            waiting_on=set(rec.get("waiting", ())),
            dependents=rec.get("dependents", []),
            is_cancelled=rec.get("cancelled", False),
            is_terminated=rec.get("terminated", False),
            ce=rec.get("ce"),
            task=Task(**rec["task"]) if rec.get("task") else None,
            released=rec.get("released", True),
            tags=rec.get("tags", {}),
        )
        return job


def job_to_stop(req: dict[str, Any]) -> str:
    """CancelJob's and TerminateJob's jobId: an empty one is refused, as AWS refuses it (an
    unknown one is not: AWS answers 200 and does nothing)."""
    if not req["jobId"]:
        raise ClientError("jobId: must not be empty; give the id of the job to stop")
    return str(req["jobId"])
