"""SubmitJob, checked: from a request to the JobSpec its jobs share and the jobs it waits on.

Everything AWS refuses is refused here, with the field named, before any job exists:
the model's shapes, the 30 KiB request limit, the queue and definition states, array
size, resources, command, retry strategy, timeout, tags and dependencies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from batchbook.engine.jobs import JobSpec, JobState
from batchbook.engine.nodes import NodeLayout, node_layout
from batchbook.engine.registry import (
    Registry,
    check_container,
    check_parameters,
    check_tags,
    check_timeout,
)
from batchbook.engine.resources import job_resources
from batchbook.engine.retry import RetryStrategy
from batchbook.engine.unsupported import refuse_unsupported
from batchbook.errors import ClientError
from batchbook.validation import check_name, validate_request
from batchbook.vocabulary import ARRAY_SIZE, MAX_DEPENDS_ON, MAX_SUBMIT_BYTES, check_range


@dataclass
class Dependencies:
    """What a new job waits on: whole jobs, the same child of an array (N_TO_N), its own
    previous child (SEQUENTIAL)."""

    plain: list[JobState] = field(default_factory=list)
    n_to_n: JobState | None = None
    sequential: bool = False


def parse_submit_job(
    req: dict[str, Any],
    registry: Registry,
    jobs: dict[str, JobState],
    min_timeout_seconds: int,
) -> tuple[JobSpec, Dependencies]:
    validate_request("SubmitJob", req)
    size = len(json.dumps(req, separators=(",", ":")))
    if size > MAX_SUBMIT_BYTES:
        raise ClientError(
            f"request: {size} bytes; a SubmitJob request may be at most {MAX_SUBMIT_BYTES} bytes (30 KiB)"
        )
    check_name("jobName", req["jobName"])
    queue = registry.job_queue(req["jobQueue"])
    if queue["state"] != "ENABLED":
        raise ClientError(
            f"jobQueue: {queue['jobQueueName']!r} is DISABLED; it accepts no new jobs"
        )
    jobdef = registry.job_definition(req["jobDefinition"])
    if jobdef["status"] != "ACTIVE":
        raise ClientError(f"jobDefinition: {jobdef['jobDefinitionArn']} is INACTIVE")
    refuse_unsupported("SubmitJob", req)
    array_size = (req.get("arrayProperties") or {}).get("size")
    check_range("arrayProperties.size", array_size, *ARRAY_SIZE)
    check_parameters(req.get("parameters"), "parameters")
    nodes = None
    if jobdef["type"] == "multinode":
        nodes = _multinode(req, jobdef, registry, queue)
        resources = nodes.group(nodes.main_node).resources
    else:
        if req.get("nodeOverrides"):
            raise ClientError(
                "nodeOverrides: only a job of a multinode job definition has nodes; "
                "use containerOverrides"
            )
        overrides = req.get("containerOverrides") or {}
        check_container(overrides, "containerOverrides")
        fargate = "FARGATE" in jobdef.get("platformCapabilities", [])
        resources = job_resources(jobdef["containerProperties"], overrides, fargate)
        _check_has_command(jobdef["containerProperties"], overrides, "containerOverrides.command")
    retry = RetryStrategy.from_api(req.get("retryStrategy") or jobdef.get("retryStrategy"))
    timeout = check_timeout(req.get("timeout") or jobdef.get("timeout"), min_timeout_seconds)
    check_tags(req.get("tags"), "tags")
    deps = _dependencies(req.get("dependsOn") or [], array_size, jobs)

    spec = JobSpec(
        req,
        queue["jobQueueName"],
        jobdef["jobDefinitionArn"],
        resources,
        retry,
        timeout,
        array_size,
        nodes,
    )
    return spec, deps


def _check_has_command(container: dict[str, Any], overrides: dict[str, Any], field: str) -> None:
    if not (overrides.get("command") or container.get("command")):
        raise ClientError(f"{field}: the local engine runs no images, so a command is required")


def _multinode(
    req: dict[str, Any], jobdef: dict[str, Any], registry: Registry, queue: dict[str, Any]
) -> NodeLayout:
    """A multi-node job's nodes, refused where AWS refuses them: with array properties or
    container overrides, and on queues whose compute environments use Spot or Fargate."""
    if req.get("arrayProperties"):
        raise ClientError("arrayProperties: a multi-node parallel job cannot be an array job")
    if req.get("containerOverrides"):
        raise ClientError(
            "containerOverrides: a multi-node parallel job takes "
            "nodeOverrides.nodePropertyOverrides[].containerOverrides"
        )
    for name in registry.queue_environments(queue):
        ce = registry.ces.get(name) or {}
        kind = (ce.get("computeResources") or {}).get("type")
        if kind in ("SPOT", "FARGATE", "FARGATE_SPOT"):
            raise ClientError(
                f"jobQueue: {queue['jobQueueName']!r} uses compute environment {name!r} of type "
                f"{kind}; multi-node parallel jobs do not run on Spot or Fargate"
            )
    overrides = req.get("nodeOverrides")
    layout = node_layout(jobdef["nodeProperties"], overrides)
    for i, change in enumerate((overrides or {}).get("nodePropertyOverrides") or []):
        check_container(
            change.get("containerOverrides") or {},
            f"nodeOverrides.nodePropertyOverrides[{i}].containerOverrides",
        )
    for group in layout.groups:
        _check_has_command(
            group.container,
            group.overrides,
            f"nodeProperties.nodeRangeProperties (nodes {group.first}:{group.last}).container.command",
        )
    return layout


def _dependencies(
    depends_on: list[dict[str, Any]], array_size: int | None, jobs: dict[str, JobState]
) -> Dependencies:
    if len(depends_on) > MAX_DEPENDS_ON:
        raise ClientError(
            f"dependsOn: {len(depends_on)} dependencies; at most {MAX_DEPENDS_ON} are allowed"
        )
    plain: list[JobState] = []
    n_to_n: JobState | None = None
    sequential = False
    for i, dep in enumerate(depends_on):
        kind, job_id = dep.get("type"), dep.get("jobId")
        where = f"dependsOn[{i}]"
        if kind == "SEQUENTIAL" and not job_id:
            if array_size is None:
                raise ClientError(f"{where}.type: SEQUENTIAL without a jobId needs an array job")
            sequential = True
            continue
        if not job_id:
            raise ClientError(f"{where}.jobId: required unless type is SEQUENTIAL")
        target = jobs.get(job_id)
        if target is None:
            raise ClientError(f"{where}.jobId: job {job_id!r} does not exist")
        if kind == "N_TO_N":
            if array_size is None or target.spec.array_size != array_size or not target.is_parent:
                raise ClientError(
                    f"{where}.type: N_TO_N needs two array jobs of the same size "
                    f"(this job {array_size}, {job_id} {target.spec.array_size if target.is_parent else None})"
                )
            n_to_n = target
        else:
            plain.append(target)
    return Dependencies(plain, n_to_n, sequential)
