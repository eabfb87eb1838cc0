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

import json
from dataclasses import dataclass, field
from typing import Any

from batchbook.display import Lines
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
MAX_QUEUES = 10  # queues whose running jobs are counted, at most
LIST_PAGE = 100  # jobs of each status of each queue looked at
QUEUE_PAGES = 5  # pages of DescribeJobQueues read


@dataclass(frozen=True, repr=False)  # shown as its lines
class Diagnosis(Lines):
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
    if summary and any(summary.values()) and "index" not in (job.get("arrayProperties") or {}):
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
        parents = backend.describe([parent_id])
        deps = [d["jobId"] for d in (parents[0] if parents else {}).get("dependsOn") or []]
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
        f"dependency {dep} ({found[dep]['jobName']}) is {found[dep]['status']}{_children(found[dep])}"
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
            suggestion = _state_limit(queue, category)
            if suggestion:
                suggestions.append(suggestion)
        return Diagnosis(
            job["jobId"], job["jobName"], "RUNNABLE", summary, category, list(evidence), suggestions
        )

    queue_name = name_of(job["jobQueue"])
    queues = backend.batch.describe_job_queues(jobQueues=[job["jobQueue"]])["jobQueues"]
    queue: dict[str, Any] = queues[0] if queues else {"jobQueueName": queue_name}
    if not queues:
        return found(f"its queue {queue_name} is gone", ACTION_REQUIRED)
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
    usable = [
        ce
        for ce in ces
        if ce.get("state") == "ENABLED" and ce.get("status") in ("VALID", "UPDATING")
    ]
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
    reason = job.get("statusReason") or ""
    fits = any(_fits(need, slot) for ce in usable for slot in _slots(ce))
    if not fits or reason.startswith((REQUIREMENT, MAX_RESOURCE)):
        category = next((c for c in (MAX_RESOURCE, REQUIREMENT) if reason.startswith(c)), None)
        if category is None:  # more vCPUs than maxvCpus anywhere, or a misfit of its types
            above = all(need[0] > _max_vcpus(ce) for ce in usable)
            category = MAX_RESOURCE if above else REQUIREMENT
        return found(
            f"it asks for {_describe(need)}, more than any compute environment of queue "
            f"{queue_name} can ever give: it will wait forever",
            category,
            *(_offers(ce) for ce in usable),
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
    """(summary, evidence) when other jobs hold the vCPUs it needs: those of the queues that
    send their jobs first to these compute environments (at most MAX_QUEUES of them, and
    the first LIST_PAGE jobs of each status in each: a bounded number of calls)."""
    names = {ce["computeEnvironmentName"] for ce in usable}
    sharing = [q for q in _queues(backend) if _first_environment(q) in names][:MAX_QUEUES]
    listed: list[dict[str, Any]] = []
    for q in sharing:  # PENDING too: an array's parent waits while its children run
        for status in ("STARTING", "RUNNING", "PENDING"):
            page = backend.batch.list_jobs(
                jobQueue=q["jobQueueName"], jobStatus=status, maxResults=LIST_PAGE
            )
            listed += [{**j, "queue": q["jobQueueName"]} for j in page["jobSummaryList"]]
    details = {d["jobId"]: d for d in backend.describe([j["jobId"] for j in listed])}
    holders: list[tuple[dict[str, Any], int, float]] = []  # (job, running, vCPUs held)
    for j in listed:
        d = details.get(j["jobId"])
        if d is None:
            continue
        summary = (d.get("arrayProperties") or {}).get("statusSummary")
        running = (
            summary.get("STARTING", 0) + summary.get("RUNNING", 0)
            if summary
            else int(d["status"] in ("STARTING", "RUNNING"))
        )
        if running:
            holders.append((j, running, running * _need(d)[0]))
    taken = sum(h[2] for h in holders)
    most = sum(_max_vcpus(ce) for ce in usable)
    if not holders or taken + need[0] <= most:
        return None
    evidence = [
        f"{j['jobName']} ({j['jobId']}, queue {j['queue']}) holds {held:g} vCPU"
        + (f" in {count(n, 'running child', 'running children')}" if n > 1 else "")
        for j, n, held in holders[:LISTED]
    ]
    first = [
        f"{q['jobQueueName']} (priority {q['priority']})"
        for q in sharing
        if q["priority"] > queue.get("priority", 0)
    ]
    if first:
        evidence.append(f"queues that come first by priority: {', '.join(first)}")
    jobs = sum(h[1] for h in holders)
    summary = (
        f"maxvCpus is taken: {taken:g} of {most:g} vCPUs are in use by "
        f"{count(jobs, 'other job')}, and it needs {need[0]:g}"
    )
    return summary, evidence


def _queues(backend: Backend) -> list[dict[str, Any]]:
    """The account's job queues (the first QUEUE_PAGES pages)."""
    out: list[dict[str, Any]] = []
    token = None
    for _ in range(QUEUE_PAGES):
        page = backend.batch.describe_job_queues(**({"nextToken": token} if token else {}))
        out += page["jobQueues"]
        token = page.get("nextToken")
        if not token:
            break
    return out


def _first_environment(queue: dict[str, Any]) -> str:
    order = sorted(queue.get("computeEnvironmentOrder") or [], key=lambda o: o["order"])
    return name_of(order[0]["computeEnvironment"]) if order else ""


def _children(job: dict[str, Any]) -> str:
    """How an array job's children stand (empty for any other job)."""
    summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
    counts = ", ".join(f"{s.lower()} {n}" for s, n in summary.items() if n)
    return f" (its children: {counts})" if counts else ""


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
    if not container and job.get("nodeProperties"):  # a multi-node job: its biggest node
        ranges = job["nodeProperties"].get("nodeRangeProperties") or []
        return max((_need({"container": r.get("container")}) for r in ranges), default=(0, 0, 0))
    found = {r["type"]: r["value"] for r in container.get("resourceRequirements") or []}
    vcpus = float(found.get("VCPU", container.get("vcpus") or 0))
    memory = int(found.get("MEMORY", container.get("memory") or 0))
    return vcpus, memory, int(found.get("GPU", 0))


def _kind(ce: dict[str, Any]) -> str:
    return str((ce.get("computeResources") or {}).get("type", ce.get("type", "")))


NO_LIMIT = (float(1 << 20), 1 << 40, 1 << 10)  # what batchbook cannot say


def _max_vcpus(ce: dict[str, Any]) -> float:
    res = ce.get("computeResources") or {}
    most = res.get("maxvCpus") if res else ce.get("unmanagedvCpus")
    return float(most) if most else NO_LIMIT[0]  # an UNMANAGED one may not say


def _slots(ce: dict[str, Any]) -> list[tuple[float, int, int]]:
    """What one job can have in compute environment ``ce``: (vCPUs, MiB, GPUs) per
    instance type (Fargate: its largest task), each within maxvCpus."""
    res = ce.get("computeResources") or {}
    most = _max_vcpus(ce)
    if _kind(ce).startswith("FARGATE"):
        return [(min(most, FARGATE_MOST[0]), FARGATE_MOST[1], 0)]
    tags = ce.get("tags") or {}
    if "batchbook:memoryMiB" in tags or not res.get("instanceTypes"):  # the local engine's
        memory = int(tags.get("batchbook:memoryMiB", NO_LIMIT[1]))
        return [(most, memory, int(tags.get("batchbook:gpus", 0 if res else NO_LIMIT[2])))]
    try:
        types = expand(list(res["instanceTypes"]))
    except Exception:  # types batchbook does not know: no limit it can say
        return [(most, NO_LIMIT[1], NO_LIMIT[2])]
    return [(min(most, t.vcpus), int(t.memory_mib * REGISTERED_MEMORY), t.gpus) for t in types]


def _offers(ce: dict[str, Any]) -> str:
    """What ``ce`` can give one job, in words."""
    name, most = ce["computeEnvironmentName"], _max_vcpus(ce)
    res = ce.get("computeResources") or {}
    if res.get("instanceTypes") and not _kind(ce).startswith("FARGATE"):
        try:
            biggest = max(expand(list(res["instanceTypes"])), key=lambda t: (t.vcpus, t.memory_mib))
        except Exception:
            return f"{name}: maxvCpus {most:g}; instance types {', '.join(res['instanceTypes'])}"
        return (
            f"{name}: maxvCpus {most:g}; its largest instance type {biggest.name} has "
            f"{biggest.vcpus} vCPU and {int(biggest.memory_mib * REGISTERED_MEMORY):,} MiB "
            f"Batch can place{f', {biggest.gpus} GPU' if biggest.gpus else ''}"
        )
    return f"{name} gives at most {_describe(max(_slots(ce)))}"


def _fits(need: tuple[float, int, int], limit: tuple[float, int, int]) -> bool:
    return need[0] <= limit[0] and need[1] <= limit[1] and need[2] <= limit[2]


def _describe(resources: tuple[float, int, int]) -> str:
    vcpus, memory, gpus = resources
    text = f"{vcpus:g} vCPU, " + (f"{memory:,} MiB" if memory < NO_LIMIT[1] else "any memory")
    return text + (f", {gpus} GPU" if gpus and gpus < NO_LIMIT[2] else "")


def _state_limit(queue: dict[str, Any], category: str) -> str | None:
    """The jobStateTimeLimitActions that would cancel such a job, unless the queue has one."""
    actions = queue.get("jobStateTimeLimitActions") or []
    if any(a.get("reason") == category for a in actions):
        return None
    action = {"reason": category, "state": "RUNNABLE", "maxTimeSeconds": 600, "action": "CANCEL"}
    also = " (with the queue's other actions: the list replaces them)" if actions else ""
    return (
        "have the queue cancel such jobs by itself after 10 minutes: aws batch "
        f"update-job-queue --job-queue {queue['jobQueueName']} --job-state-time-limit-actions "
        f"'{json.dumps([*actions, action])}'{also}"
    )
