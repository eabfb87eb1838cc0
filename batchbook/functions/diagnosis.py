"""Why a job is where it is, in plain words, with the evidence: ``job.diagnose()`` and
``batchbook why JOB``.

Read from the Batch API alone (DescribeJobs, DescribeJobQueues, DescribeComputeEnvironments,
ListJobs), so the same code explains a job on the local engine and on AWS: a dependency
and its status; a queue that is not ENABLED; compute environments that are all DISABLED
or INVALID; a request no compute environment can ever give (naming the request and the
limit); maxvCpus taken by other jobs (which, and the queues that come first by priority);
spot capacity not granted; the timeouts and OOM kills of earlier attempts. It names AWS's
statusReason category where one applies and suggests the queue's jobStateTimeLimitActions
that would cancel such a job by itself.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from batchbook.errors import ResourceNotFound
from batchbook.functions.backend import Backend
from batchbook.instances import expand
from batchbook.vocabulary import FINAL, OOM_REASON, TIMEOUT_REASON, name_of
from batchbook.wording import count

# AWS's categories of a blocked RUNNABLE job (its troubleshooting guide)
CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
MAX_RESOURCE = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
REQUIREMENT = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
SERVICE_ROLE = "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS"
ACTION_REQUIRED = "ACTION_REQUIRED"
UNDETERMINED = "UNDETERMINED"
CATEGORIES = (CAPACITY, MAX_RESOURCE, REQUIREMENT, SERVICE_ROLE, ACTION_REQUIRED, UNDETERMINED)
LIMITED = (CAPACITY, MAX_RESOURCE, REQUIREMENT)  # the ones jobStateTimeLimitActions take
FARGATE_MOST = (16, 120 * 1024)  # vCPUs, MiB: the largest Fargate task
REGISTERED_MEMORY = 0.94  # of an instance's memory, what Batch can place jobs in
LISTED = 5  # jobs named as evidence, at most


@dataclass(frozen=True)
class Diagnosis:
    """Why a job is where it is: one sentence, AWS's category, the evidence, what to do."""

    job_id: str
    name: str
    status: str
    summary: str
    category: str | None = None
    evidence: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = f"{self.name} ({self.job_id}) is {self.status}: {self.summary}"
        out = [head + (f" [{self.category}]" if self.category else "")]
        out += [f"  - {e}" for e in self.evidence]
        out += [f"  to do: {s}" for s in self.suggestions]
        return out

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        head, *rest = self.lines()
        items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in rest)
        return f"<div><b>{html.escape(head)}</b><ul>{items}</ul></div>"


def diagnose(backend: Backend, job_id: str) -> Diagnosis:
    """Why job ``job_id`` is where it is (an array job: through its first waiting child)."""
    described = backend.describe([job_id])
    if not described:
        raise ResourceNotFound(f"job {job_id}: Batch has no such job")
    job = described[0]
    status = job["status"]
    history = _history(job)
    if status in FINAL:
        reason = job.get("statusReason") or ""
        return Diagnosis(
            job["jobId"],
            job["jobName"],
            status,
            f"it is over ({reason})" if reason else "it is over",
            evidence=history,
        )
    summary = (job.get("arrayProperties") or {}).get("statusSummary")
    if summary and "index" not in (job.get("arrayProperties") or {}):
        return _through_child(backend, job, summary)
    if status in ("SUBMITTED", "PENDING"):
        found = _pending(backend, job)
    elif status == "RUNNABLE":
        found = _runnable(backend, job)
    elif status == "STARTING":
        found = Diagnosis(
            job["jobId"], job["jobName"], status,
            "it has a place; its container is being started (on AWS an instance may be "
            "booting and pulling the image: a few minutes)",
        )  # fmt: skip
    else:
        attempt = len(job.get("attempts") or []) + 1
        found = Diagnosis(job["jobId"], job["jobName"], status, f"its attempt {attempt} is running")
    return Diagnosis(
        found.job_id, found.name, found.status, found.summary, found.category,
        found.evidence + history, found.suggestions,
    )  # fmt: skip


def _through_child(backend: Backend, parent: dict[str, Any], summary: dict[str, int]) -> Diagnosis:
    counts = ", ".join(f"{s.lower()} {n}" for s, n in summary.items() if n)
    for status in ("RUNNABLE", "PENDING", "SUBMITTED", "STARTING", "RUNNING"):
        if summary.get(status):
            page = backend.batch.list_jobs(
                arrayJobId=parent["jobId"], jobStatus=status, maxResults=1
            )["jobSummaryList"]
            if page:
                child = diagnose(backend, page[0]["jobId"])
                return Diagnosis(
                    parent["jobId"], parent["jobName"], parent["status"],
                    f"its children: {counts}; the first {status.lower()} one, "
                    f"{child.job_id}: {child.summary}",
                    child.category, child.evidence, child.suggestions,
                )  # fmt: skip
    return Diagnosis(
        parent["jobId"], parent["jobName"], parent["status"], f"its children: {counts}"
    )


def _pending(backend: Backend, job: dict[str, Any]) -> Diagnosis:
    deps = [d["jobId"] for d in job.get("dependsOn") or []]
    index = (job.get("arrayProperties") or {}).get("index")
    parent_id = job["jobId"].split(":")[0] if index is not None else None
    if not deps and parent_id:
        [parent] = backend.describe([parent_id])
        deps = [d["jobId"] for d in parent.get("dependsOn") or []]
    if not deps:
        node = job.get("nodeDetails") or {}
        if node and not node.get("isMainNode"):
            return Diagnosis(
                job["jobId"], job["jobName"], job["status"],
                "it is a node of a multi-node job: it starts once the main node runs",
            )  # fmt: skip
        return Diagnosis(
            job["jobId"], job["jobName"], job["status"],
            "it is being admitted to its queue (a moment)",
        )  # fmt: skip
    found = {d["jobId"]: d for d in backend.describe(deps)}
    evidence = [
        f"dependency {dep} ({found[dep]['jobName']}) is {found[dep]['status']}"
        if dep in found
        else f"dependency {dep}: Batch has no such job"
        for dep in deps
    ]
    failed = [d for d in deps if found.get(d, {}).get("status") == "FAILED"]
    missing = [d for d in deps if d not in found]
    waiting = [d for d in deps if d in found and found[d]["status"] not in FINAL]
    if missing:
        summary = f"it depends on {missing[0]}, which Batch does not have: it will wait forever"
        return Diagnosis(
            job["jobId"], job["jobName"], job["status"], summary, UNDETERMINED, evidence,
            [f"aws batch terminate-job --job-id {job['jobId']} --reason 'its dependency is gone'"],
        )  # fmt: skip
    if failed:
        summary = f"dependency {failed[0]} failed: it will fail too (Dependent Job failed)"
    elif waiting:
        first = found.get(waiting[0], {})
        summary = (
            f"waiting on {count(len(waiting), 'dependency', 'dependencies')}: "
            f"{waiting[0]} ({first.get('jobName', '?')}) is {first.get('status', 'unknown')}"
        )
    else:
        summary = "its dependencies are done: it is about to be queued"
    return Diagnosis(job["jobId"], job["jobName"], job["status"], summary, evidence=evidence)


def _runnable(backend: Backend, job: dict[str, Any]) -> Diagnosis:
    def found(
        summary: str, category: str | None, *evidence: str, todo: list[str] | None = None
    ) -> Diagnosis:
        suggestions = list(todo or [])
        if category in LIMITED:
            suggestions.append(_state_limit(queue_name, category))
        return Diagnosis(
            job["jobId"], job["jobName"], "RUNNABLE", summary, category, list(evidence), suggestions
        )

    queue_name = name_of(job["jobQueue"])
    queues = backend.batch.describe_job_queues(jobQueues=[job["jobQueue"]])["jobQueues"]
    if not queues:
        return found(f"its queue {queue_name} is gone", ACTION_REQUIRED)
    queue = queues[0]
    if queue["state"] != "ENABLED":
        return found(
            f"its queue {queue_name} is {queue['state']}: nothing in it starts",
            None,
            f"job queue {queue_name}: state {queue['state']}, status {queue.get('status')}",
            todo=[f"aws batch update-job-queue --job-queue {queue_name} --state ENABLED"],
        )
    order = sorted(queue["computeEnvironmentOrder"], key=lambda o: o["order"])
    ces = backend.batch.describe_compute_environments(
        computeEnvironments=[name_of(o["computeEnvironment"]) for o in order]
    )["computeEnvironments"]
    states = [
        f"compute environment {ce['computeEnvironmentName']}: {ce.get('state')}, "
        f"{ce.get('status')}" + (f" ({ce['statusReason']})" if ce.get("statusReason") else "")
        for ce in ces
    ]
    usable = [ce for ce in ces if ce.get("state") == "ENABLED" and ce.get("status") == "VALID"]
    if not usable:
        role = any("role" in (ce.get("statusReason") or "").lower() for ce in ces)
        return found(
            f"no compute environment of queue {queue_name} is ENABLED and VALID",
            SERVICE_ROLE if role else ACTION_REQUIRED,
            *states,
            todo=[
                f"aws batch update-compute-environment --compute-environment "
                f"{ce['computeEnvironmentName']} --state ENABLED"
                for ce in ces
                if ce.get("state") != "ENABLED"
            ],
        )
    need = _need(job)
    limits = [(ce, _limit(ce)) for ce in usable]
    reason = job.get("statusReason") or ""
    asked = _describe(need)
    if not any(_fits(need, limit) for _, limit in limits) or reason.startswith(
        (REQUIREMENT, MAX_RESOURCE)
    ):
        category = next((c for c in (MAX_RESOURCE, REQUIREMENT) if reason.startswith(c)), None)
        if category is None:
            category = MAX_RESOURCE if all(need[0] > lim[0] for _, lim in limits) else REQUIREMENT
        return found(
            f"it asks for {asked}, more than any compute environment of queue {queue_name} "
            "can ever give: it will wait forever",
            category,
            *(
                f"{ce['computeEnvironmentName']} gives at most {_describe(lim)}"
                for ce, lim in limits
            ),
            todo=["ask for less (vcpus=, memory=, gpus=), or add a compute environment that fits"],
        )
    if reason.startswith(CAPACITY):
        spot = [ce["computeEnvironmentName"] for ce in usable if _kind(ce).endswith("SPOT")]
        return found(
            "spot capacity is not granted for it"
            + (f" in {', '.join(spot)}" if spot else "")
            + ": it starts when AWS has the instances",
            CAPACITY,
            reason,
            todo=["add on-demand capacity to the queue, or allow more instance types"],
        )
    busy = _in_use(backend, queue, usable, need)
    if busy:
        return found(busy[0], None, *busy[1])
    return found(
        "it waits for capacity to start (on AWS, instances may be starting: a few minutes)",
        UNDETERMINED if reason.startswith(UNDETERMINED) else None,
        *([reason] if reason else []),
    )


def _in_use(
    backend: Backend,
    queue: dict[str, Any],
    usable: list[dict[str, Any]],
    need: tuple[float, int, int],
) -> tuple[str, list[str]] | None:
    """(summary, evidence) when other jobs hold the vCPUs it needs."""
    names = {ce["computeEnvironmentName"] for ce in usable}
    sharing = [
        q
        for q in backend.batch.describe_job_queues()["jobQueues"]
        if names & {name_of(o["computeEnvironment"]) for o in q["computeEnvironmentOrder"]}
    ]
    running: list[dict[str, Any]] = []
    for q in sharing:
        for status in ("STARTING", "RUNNING"):
            page = backend.batch.list_jobs(jobQueue=q["jobQueueName"], jobStatus=status)
            running += [{**j, "queue": q["jobQueueName"]} for j in page["jobSummaryList"]]
    details = {d["jobId"]: d for d in backend.describe([j["jobId"] for j in running])}
    taken = sum(_need(details[j["jobId"]])[0] for j in running if j["jobId"] in details)
    most = sum((ce.get("computeResources") or {}).get("maxvCpus", 0) for ce in usable)
    if taken + need[0] <= most:
        return None
    first = [
        f"{q['jobQueueName']} (priority {q['priority']})"
        for q in sharing
        if q["priority"] > queue["priority"]
    ]
    evidence = [
        f"{j['jobName']} ({j['jobId']}, queue {j['queue']}) holds "
        f"{_need(details[j['jobId']])[0]:g} vCPU"
        for j in running[:LISTED]
        if j["jobId"] in details
    ]
    if first:
        evidence.append(f"queues that come first by priority: {', '.join(first)}")
    summary = (
        f"maxvCpus is taken: {taken:g} of {most:g} vCPUs are in use by "
        f"{count(len(running), 'other job')}, and it needs {need[0]:g}"
    )
    return summary, evidence


def _history(job: dict[str, Any]) -> list[str]:
    """Earlier attempts that timed out or were killed for memory."""
    out = []
    timeout = (job.get("timeout") or {}).get("attemptDurationSeconds")
    for n, attempt in enumerate(job.get("attempts") or [], 1):
        reason = attempt.get("statusReason") or ""
        container = (attempt.get("container") or {}).get("reason") or ""
        if reason.startswith(TIMEOUT_REASON):
            limit = f" (timeout {timeout} s)" if timeout else ""
            out.append(f"attempt {n} timed out{limit}: raise timeout= or split the work")
        elif container.startswith(OOM_REASON.split(":")[0]) or OOM_REASON in reason:
            out.append(f"attempt {n} was killed for memory ({container or reason}): raise memory=")
    return out


def _need(job: dict[str, Any]) -> tuple[float, int, int]:
    """(vCPUs, MiB, GPUs) a job asks for."""
    container = job.get("container") or {}
    found = {r["type"]: r["value"] for r in container.get("resourceRequirements") or []}
    vcpus = float(found.get("VCPU", container.get("vcpus") or 0))
    memory = int(found.get("MEMORY", container.get("memory") or 0))
    return vcpus, memory, int(found.get("GPU", 0))


def _kind(ce: dict[str, Any]) -> str:
    return str((ce.get("computeResources") or {}).get("type", ce.get("type", "")))


def _limit(ce: dict[str, Any]) -> tuple[float, int, int]:
    """The most one job can have in compute environment ``ce``: (vCPUs, MiB, GPUs)."""
    res = ce.get("computeResources") or {}
    most = float(res.get("maxvCpus") or ce.get("unmanagedvCpus") or 0)
    kind = _kind(ce)
    if kind.startswith("FARGATE"):
        return min(most, FARGATE_MOST[0]), FARGATE_MOST[1], 0
    tags = ce.get("tags") or {}
    if "batchbook:memoryMiB" in tags or not res.get("instanceTypes"):  # the local engine's
        return (
            most,
            int(tags.get("batchbook:memoryMiB", 1 << 40)),
            int(tags.get("batchbook:gpus", 0)),
        )
    try:
        types = expand(list(res["instanceTypes"]))
    except Exception:
        return most, 1 << 40, 1 << 10  # types batchbook does not know: no limit it can say
    biggest = max(types, key=lambda t: (t.vcpus, t.memory_mib))
    memory = max(int(t.memory_mib * REGISTERED_MEMORY) for t in types)
    return min(most, biggest.vcpus), memory, max(t.gpus for t in types)


def _fits(need: tuple[float, int, int], limit: tuple[float, int, int]) -> bool:
    return need[0] <= limit[0] and need[1] <= limit[1] and need[2] <= limit[2]


def _describe(resources: tuple[float, int, int]) -> str:
    vcpus, memory, gpus = resources
    text = f"{vcpus:g} vCPU, " + (f"{memory:,} MiB" if memory < 1 << 40 else "any memory")
    return text + (f", {gpus} GPU" if gpus and gpus < 1 << 10 else "")


def _state_limit(queue: str, category: str) -> str:
    action = [{"reason": category, "state": "RUNNABLE", "maxTimeSeconds": 600, "action": "CANCEL"}]
    return (
        "have the queue cancel such jobs by itself after 10 minutes: aws batch "
        f"update-job-queue --job-queue {queue} --job-state-time-limit-actions "
        f"'{json.dumps(action)}'"
    )
