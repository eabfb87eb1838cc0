"""Jobs as the Batch API shows them: DescribeJobs details, ListJobs summaries and filters,
and the sentence that says why a job is where it is. Read-only over the engine's state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from batchbook.engine.jobs import JobState, Task
from batchbook.engine.registry import Registry
from batchbook.engine.resources import NONE, Resources
from batchbook.errors import ClientError
from batchbook.validation import validate_request
from batchbook.vocabulary import (
    ESSENTIAL_EXITED,
    MAX_DESCRIBE_JOBS,
    OOM_REASON,
    TIMEOUT_REASON,
    name_of,
    paginate,
    with_token,
)


def task_arn(registry: Registry, task_id: str) -> str:
    return registry.arn("task", f"local/{task_id}", "ecs")


def attempt_detail(
    registry: Registry,
    job: JobState,
    task: Task,
    now: int,
    exit_code: int | None,
    oom: bool,
    lost_reason: str | None,
    peak_memory_kib: int | None,
    cpu_seconds: float | None,
) -> dict[str, Any]:
    """The ``attempts[]`` entry of an attempt that just ended, with AWS's reasons: why it was
    stopped (terminate, timeout), killed for memory (exit 137), lost (no exit code), or exited;
    ``usage`` (peak memory, CPU time) is the local engine's own, left out of DescribeJobs."""
    container_reason = None
    if task.stop_kind == "spot":  # its host went: no exit code, as with any lost host
        exit_code, status_reason = None, task.stop_reason or "Host EC2 terminated."
        container_reason = status_reason
    elif task.stop_kind in ("terminate", "restart"):
        status_reason = task.stop_reason or "Terminated"
    elif task.stop_kind == "timeout":
        status_reason = TIMEOUT_REASON
    elif oom:
        exit_code, status_reason = 137, OOM_REASON
        container_reason = OOM_REASON
    elif exit_code is None:
        status_reason = lost_reason or "Attempt lost"
        container_reason = lost_reason
    else:
        status_reason = ESSENTIAL_EXITED
    container: dict[str, Any] = {
        "logStreamName": task.log_stream,
        "taskArn": task_arn(registry, task.task_id),
        "containerInstanceArn": container_instance_arn(registry, job.ce),
    }
    if exit_code is not None:
        container["exitCode"] = exit_code
    if container_reason:
        container["reason"] = container_reason
    attempt: dict[str, Any] = {
        "container": container,
        "startedAt": task.started_at or now,
        "stoppedAt": now,
        "statusReason": status_reason,
    }
    usage = {
        k: v
        for k, v in (("peakMemoryKiB", peak_memory_kib), ("cpuSeconds", cpu_seconds))
        if v is not None
    }
    if usage:
        attempt["usage"] = usage
    return attempt


def container_instance_arn(registry: Registry, ce: str | None) -> str:
    """This machine, as the container instance of compute environment ``ce``'s cluster."""
    return registry.arn("container-instance", f"{ce or 'local'}-local/local", "ecs")


def describe_jobs(
    req: dict[str, Any], jobs: dict[str, JobState], registry: Registry, now: int
) -> dict[str, Any]:
    """DescribeJobs: at most 100 ids; unknown ones are left out, as AWS leaves them."""
    validate_request("DescribeJobs", req)
    ids = req["jobs"]
    if len(ids) > MAX_DESCRIBE_JOBS:
        raise ClientError(
            f"jobs: {len(ids)} job ids; at most {MAX_DESCRIBE_JOBS} are allowed per call"
        )
    return {"jobs": [job_detail(jobs[i], registry, now) for i in ids if i in jobs]}


def list_jobs(req: dict[str, Any], jobs: dict[str, JobState], registry: Registry) -> dict[str, Any]:
    """ListJobs: by array, or by queue (newest first); RUNNING unless a status or filters say."""
    filters = req.get("filters") or []
    status = None if filters else req.get("jobStatus", "RUNNING")
    if req.get("arrayJobId"):
        parent = jobs.get(req["arrayJobId"])
        if parent is None or not parent.is_array_parent:
            raise ClientError(f"arrayJobId: {req['arrayJobId']!r} is not an array job")
        found: Iterable[JobState] = parent.children
    elif req.get("multiNodeJobId"):
        parent = jobs.get(req["multiNodeJobId"])
        if parent is None or not parent.is_multinode_parent:
            raise ClientError(
                f"multiNodeJobId: {req['multiNodeJobId']!r} is not a multi-node parallel job"
            )
        found = parent.children
    elif req.get("jobQueue"):
        name = registry.job_queue(req["jobQueue"])["jobQueueName"]
        found = sorted(
            (j for j in jobs.values() if j.parent is None and j.spec.queue == name),
            key=lambda j: -j.seq,
        )
    else:
        raise ClientError("jobQueue: one of jobQueue, arrayJobId or multiNodeJobId is required")
    if status is not None:
        found = [j for j in found if j.status == status]
    for f in filters:
        found = _filter(list(found), f)
    page, token = paginate(list(found), req.get("maxResults"), req.get("nextToken"), 1000)
    return with_token({"jobSummaryList": [job_summary(j, registry) for j in page]}, token)


def _filter(jobs: list[JobState], f: dict[str, Any]) -> list[JobState]:
    name, values = f.get("name"), f.get("values") or []
    if len(values) != 1:
        raise ClientError(f"filters.{name}: exactly one value is required")
    value = values[0]
    if name == "JOB_NAME":
        if value.endswith("*"):
            return [j for j in jobs if j.spec.name.startswith(value[:-1])]
        return [j for j in jobs if j.spec.name == value]
    if name in ("BEFORE_CREATED_AT", "AFTER_CREATED_AT"):
        try:
            at = int(value)
        except ValueError:
            raise ClientError(f"filters.{name}: {value!r} is not epoch milliseconds") from None
        if name == "BEFORE_CREATED_AT":
            return [j for j in jobs if j.created_at < at]
        return [j for j in jobs if j.created_at > at]
    if name == "JOB_DEFINITION":
        ref = name_of(value)
        return [
            j
            for j in jobs
            if j.spec.job_definition_arn.endswith("/" + ref)
            or (":" not in ref and name_of(j.spec.job_definition_arn).split(":")[0] == ref)
        ]
    raise ClientError(
        f"filters.name: {name!r} is not one of JOB_NAME, JOB_DEFINITION, BEFORE_CREATED_AT, AFTER_CREATED_AT"
    )


def job_summary(job: JobState, registry: Registry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "jobArn": registry.arn("job", job.id),
        "jobId": job.id,
        "jobName": job.spec.name,
        "createdAt": job.created_at,
        "status": job.status,
        "jobDefinition": job.spec.job_definition_arn,
    }
    _add_times(out, job)
    if job.attempts:
        last = job.attempts[-1]["container"]
        out["container"] = {k: last[k] for k in ("exitCode", "reason") if k in last}
    if job.is_array_parent:
        out["arrayProperties"] = {"size": len(job.children)}
    elif job.index is not None:
        out["arrayProperties"] = {"index": job.index}
    nodes = job.spec.nodes
    if job.is_multinode_parent and nodes is not None:
        out["nodeProperties"] = {"numNodes": nodes.num_nodes}
    elif job.node is not None and nodes is not None:
        out["nodeProperties"] = {
            "isMainNode": job.is_main_node,
            "numNodes": nodes.num_nodes,
            "nodeIndex": job.node,
        }
    return out


def job_detail(job: JobState, registry: Registry, now: int) -> dict[str, Any]:
    spec, req = job.spec, job.spec.request
    jobdef = registry.jobdefs[name_of(spec.job_definition_arn)]
    shown = job.main_node if job.is_multinode_parent else job  # a multi-node job shows its main's
    assert shown is not None
    out: dict[str, Any] = {
        "jobArn": registry.arn("job", job.id),
        "jobName": spec.name,
        "jobId": job.id,
        "jobQueue": registry.arn("job-queue", spec.queue),
        "status": job.status,
        "attempts": [{k: v for k, v in a.items() if k != "usage"} for a in shown.attempts],
        "createdAt": job.created_at,
        "retryStrategy": spec.retry.to_api(),
        "dependsOn": req.get("dependsOn") or [],
        "jobDefinition": spec.job_definition_arn,
        "parameters": {**jobdef.get("parameters", {}), **(req.get("parameters") or {})},
        "tags": dict((job.parent or job).tags),
        "propagateTags": bool(req.get("propagateTags", jobdef.get("propagateTags", False))),
        "platformCapabilities": jobdef.get("platformCapabilities", ["EC2"]),
        "isCancelled": shown.is_cancelled,
        "isTerminated": shown.is_terminated,
    }
    if spec.nodes is None or job.node is not None:
        out["container"] = _container(job, jobdef, registry)
    _add_times(out, shown)
    if spec.timeout_seconds:
        out["timeout"] = {"attemptDurationSeconds": spec.timeout_seconds}
    if job.is_array_parent:
        out["arrayProperties"] = {
            "statusSummary": dict(job.summary),
            "statusSummaryLastUpdatedAt": now,
            "size": len(job.children),
        }
    elif job.index is not None:
        out["arrayProperties"] = {"index": job.index}
    if job.is_multinode_parent and spec.nodes is not None:
        out["nodeProperties"] = {
            **jobdef["nodeProperties"],
            "numNodes": spec.nodes.num_nodes,
        }
    elif job.node is not None:
        out["nodeDetails"] = {"nodeIndex": job.node, "isMainNode": job.is_main_node}
    return out


def _container(job: JobState, jobdef: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """DescribeJobs' ``container``: what the job runs, with what it holds given as it was
    asked for (``vcpus``/``memory`` if the legacy fields said so, else resourceRequirements),
    and its latest attempt's task, instance, exit code and log stream."""
    props, overrides = job.spec.container(jobdef)
    container: dict[str, Any] = {
        "image": props.get("image"),
        "command": job.command(jobdef),
        "environment": [
            {"name": k, "value": v} for k, v in job.defined_environment(jobdef).items()
        ],
        "volumes": props.get("volumes") or [],
        "mountPoints": props.get("mountPoints") or [],
        "ulimits": [],
        "secrets": props.get("secrets") or [],  # names and ARNs, as AWS shows them
    }
    container.update(_asked_resources(job.spec.resources, props, overrides))
    for key in (
        "jobRoleArn",
        "executionRoleArn",
        "logConfiguration",
        "networkConfiguration",
        "fargatePlatformConfiguration",
        "ephemeralStorage",
        "runtimePlatform",
        "instanceType",
    ):
        if props.get(key) is not None:
            container[key] = props[key]
    current = job.task
    if current is not None:
        container["logStreamName"] = current.log_stream
        container["taskArn"] = task_arn(registry, current.task_id)
        container["containerInstanceArn"] = container_instance_arn(registry, job.ce)
    elif job.attempts:
        container.update(job.attempts[-1]["container"])
    return container


def _asked_resources(
    have: Resources, props: dict[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """``vcpus``, ``memory`` and ``resourceRequirements`` as the definition and overrides gave
    them: each of VCPU and MEMORY where its deciding source (override over definition) put it."""
    values = {
        "VCPU": f"{have.vcpu_milli / 1000:g}",
        "MEMORY": str(have.memory_mib),
        "GPU": str(have.gpus),
    }
    legacy = {"VCPU": "vcpus", "MEMORY": "memory"}
    out: dict[str, Any] = {}
    requirements = []
    for kind in ("VCPU", "MEMORY", "GPU"):
        source = next(
            (
                where
                for where in (overrides, props)
                if kind in {r.get("type") for r in where.get("resourceRequirements") or []}
                or (kind in legacy and where.get(legacy[kind]) is not None)
            ),
            None,
        )
        if source is None:
            continue
        if (
            kind in legacy
            and source.get(legacy[kind]) is not None
            and kind not in {r.get("type") for r in source.get("resourceRequirements") or []}
        ):
            out[legacy[kind]] = round(float(values[kind]))
        else:
            requirements.append({"type": kind, "value": values[kind]})
    out["resourceRequirements"] = requirements
    return out


def why_not_running(job: JobState, registry: Registry, used: dict[str, Resources]) -> str:
    """A sentence on why a job is where it is (for "stuck in RUNNABLE" questions)."""
    if job.status == "PENDING":
        if job.node is not None and not job.is_main_node and job.parent and job.parent.released:
            return f"waiting for its main node {job.parent.id}#{job.spec.nodes and job.spec.nodes.main_node} to run"
        if job.waiting_on:
            return f"waiting on {len(job.waiting_on)} dependencies: {', '.join(sorted(job.waiting_on)[:5])}"
        return "waiting for its array parent's dependencies"
    if job.status == "RUNNABLE":
        if job.status_reason:
            return job.status_reason
        queue = registry.queues.get(job.spec.queue)
        if queue is None or queue["state"] != "ENABLED":
            return f"job queue {job.spec.queue} is not ENABLED"
        names = registry.queue_environments(queue)
        enabled = [n for n in names if registry.ces.get(n, {}).get("state") == "ENABLED"]
        if not enabled:
            return f"no ENABLED compute environment in job queue {job.spec.queue}"
        busy = ", ".join(
            f"{n}: {used.get(n, NONE).describe()} of {registry.capacity[n].describe()} in use"
            for n in enabled
        )
        return f"waiting for capacity ({job.spec.resources.describe()} needed; {busy})"
    return f"{job.status}: {job.status_reason or ''}".strip()


def _add_times(out: dict[str, Any], job: JobState) -> None:
    """The optional members every job shape shares: statusReason, startedAt, stoppedAt."""
    for key, value in (
        ("statusReason", job.status_reason),
        ("startedAt", job.started_at),
        ("stoppedAt", job.stopped_at),
    ):
        if value is not None:
            out[key] = value
