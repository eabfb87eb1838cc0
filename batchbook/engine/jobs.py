"""Jobs: what was submitted (JobSpec, shared by an array's children) and how it is going (JobState)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from batchbook.engine.nodes import NodeGroup, NodeLayout
from batchbook.engine.resources import Resources
from batchbook.engine.retry import RetryStrategy
from batchbook.errors import ClientError
from batchbook.vocabulary import FINAL

LOOPBACK = "127.0.0.1"  # every node's address: the nodes of a local job share this machine
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
    nodes: NodeLayout | None = None  # a multi-node parallel job's nodes
    node_group: NodeGroup | None = None  # one node's: what it runs and holds

    @property
    def name(self) -> str:
        return self.request["jobName"]

    def for_node(self, node: int) -> JobSpec:
        """What node ``node`` of a multi-node job runs: its group's container and resources.
        The main node carries the job's retry strategy and timeout (they apply to the whole
        job); a child node's failure is not retried on its own."""
        assert self.nodes is not None
        main = node == self.nodes.main_node
        group = self.nodes.group(node)
        return replace(
            self,
            resources=group.resources,
            node_group=group,
            retry=self.retry if main else RetryStrategy(),
            timeout_seconds=self.timeout_seconds if main else None,
        )

    def container(self, jobdef: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(container properties, container overrides) of what this job runs."""
        if self.node_group is not None:
            return self.node_group.container, self.node_group.overrides
        return jobdef["containerProperties"], self.request.get("containerOverrides") or {}

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
            **({"nodes": self.nodes.to_record()} if self.nodes else {}),
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
            nodes=NodeLayout.from_record(rec["nodes"]) if rec.get("nodes") else None,
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
    stop_kind: str | None = None  # "timeout", "terminate", "restart" (a child node) or "spot"

    def to_record(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(eq=False)
class JobState:
    id: str
    spec: JobSpec
    created_at: int
    seq: int  # FIFO order within the queue
    index: int | None = None  # array child index
    node: int | None = None  # a multi-node job's node index
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
    runnable_at: int | None = None  # when it last became RUNNABLE (for state time limits)
    # top-level jobs only; an array's children share the parent's
    tags: dict[str, str] = field(default_factory=dict)
    # array parents only
    children: list[JobState] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    released: bool = True  # a parent releases its children once its own dependencies are met

    @property
    def is_parent(self) -> bool:
        """An array's parent or a multi-node job's: it runs nothing itself."""
        return self.parent is None and (
            self.spec.array_size is not None or self.spec.nodes is not None
        )

    @property
    def is_array_parent(self) -> bool:
        return self.parent is None and self.spec.array_size is not None

    @property
    def is_multinode_parent(self) -> bool:
        return self.parent is None and self.spec.nodes is not None

    @property
    def is_main_node(self) -> bool:
        return (
            self.node is not None
            and self.spec.nodes is not None
            and (self.node == self.spec.nodes.main_node)
        )

    @property
    def main_node(self) -> JobState | None:
        """A multi-node job's main node (of the job itself, or of one of its nodes)."""
        top = self.parent or self
        if top.spec.nodes is None or not top.children:
            return None
        return top.children[top.spec.nodes.main_node]

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def command(self, jobdef: dict[str, Any]) -> list[str]:
        """The container's command: the override's or the definition's, ``Ref::name`` filled in
        from SubmitJob's parameters over the definition's defaults."""
        container, overrides = self.spec.container(jobdef)
        command = overrides.get("command") or container.get("command") or []
        params = {**jobdef.get("parameters", {}), **(self.spec.request.get("parameters") or {})}
        return [_REF.sub(lambda m: params.get(m.group(1), m.group(0)), arg) for arg in command]

    def defined_environment(self, jobdef: dict[str, Any]) -> dict[str, str]:
        """The definition's environment with the override's over it."""
        container, overrides = self.spec.container(jobdef)
        return {
            e["name"]: e.get("value", "")
            for e in [
                *(container.get("environment") or []),
                *(overrides.get("environment") or []),
            ]
        }

    def secrets(self, jobdef: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """(name, valueFrom) of each secret the attempt's container gets."""
        container, _ = self.spec.container(jobdef)
        return tuple((s["name"], s["valueFrom"]) for s in container.get("secrets") or [])

    def environment(self, jobdef: dict[str, Any], attempt: int) -> dict[str, str]:
        """Everything an attempt's process gets: the defined environment and Batch's own."""
        env = self.defined_environment(jobdef)
        env["AWS_BATCH_JOB_ID"] = self.id
        env["AWS_BATCH_JOB_ATTEMPT"] = str(attempt)
        env["AWS_BATCH_JQ_NAME"] = self.spec.queue
        env["AWS_BATCH_CE_NAME"] = self.ce or ""
        if self.index is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(self.index)
        if self.node is not None and self.spec.nodes is not None:
            env["AWS_BATCH_JOB_NODE_INDEX"] = str(self.node)
            env["AWS_BATCH_JOB_NUM_NODES"] = str(self.spec.nodes.num_nodes)
            env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] = str(self.spec.nodes.main_node)
            if not self.is_main_node:
                env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = LOOPBACK
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
        if self.runnable_at is not None:
            rec["runnable"] = self.runnable_at
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
        index = node = None
        if parent is None:
            spec = JobSpec.from_record(rec["spec"])
        elif "#" in job_id:
            node = int(job_id.rsplit("#", 1)[1])
            spec = parent.spec.for_node(node)
        else:
            index = int(job_id.rsplit(":", 1)[1])
            spec = parent.spec
        job = cls(
            id=job_id,
            spec=spec,
            created_at=rec["created"],
            seq=rec["seq"],
            index=index,
            node=node,
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
            runnable_at=rec.get("runnable"),
            released=rec.get("released", True),
            tags=rec.get("tags", {}),
        )
        return job


def parent_id(job_id: str) -> str | None:
    """The array's or multi-node job's id of a child (``J:3``, ``J#1``); None for a top-level id."""
    for mark in (":", "#"):
        if mark in job_id:
            return job_id.rsplit(mark, 1)[0]
    return None


def job_to_stop(req: dict[str, Any]) -> str:
    """CancelJob's and TerminateJob's jobId: an empty one is refused, as AWS refuses it (an
    unknown one is not: AWS answers 200 and does nothing)."""
    if not req["jobId"]:
        raise ClientError("jobId: must not be empty; give the id of the job to stop")
    return str(req["jobId"])
