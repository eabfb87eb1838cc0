"""Compute environments, job queues and job definitions, kept in their AWS API shapes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from batchbook.engine.nodes import check_node_properties
from batchbook.engine.resources import (
    GPU_TAG,
    MEMORY_TAG,
    SPOT_CAPACITY_TAG,
    Resources,
    environment_capacity,
    job_resources,
    spot_granted,
)
from batchbook.engine.retry import RetryStrategy
from batchbook.engine.spot import check_tags as check_spot_tags
from batchbook.engine.statelimits import MAX_TIME_SECONDS, check_state_limits
from batchbook.engine.unsupported import refuse_unsupported
from batchbook.errors import ClientError
from batchbook.instances import expand
from batchbook.validation import check_name, validate_request
from batchbook.vocabulary import MAX_TAGS, check_range, name_of, paginate, with_token

LOCAL_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Host:
    """The machine the local engine runs on, as far as the engine needs to know."""

    cpus: int
    memory_mib: int
    region: str = "us-east-1"
    account: str = LOCAL_ACCOUNT


class Registry:
    """Holds compute environments, job queues and job definitions by name."""

    def __init__(
        self,
        host: Host,
        on_change: Callable[[str, str, dict[str, Any] | None], None],
        min_state_limit_seconds: int = MAX_TIME_SECONDS[0],
    ):
        self.host = host
        self.min_state_limit_seconds = min_state_limit_seconds
        self.ces: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.jobdefs: dict[str, dict[str, Any]] = {}  # "name:revision" -> definition
        self.capacity: dict[str, Resources] = {}
        self.region = host.region  # the region of the request being served
        self.on_change = on_change

    def arn(self, kind: str, name: str, service: str = "batch") -> str:
        return f"arn:aws:{service}:{self.region}:{self.host.account}:{kind}/{name}"

    def scheduler_arn(self, path: str) -> str:
        """An EventBridge Scheduler ARN: ``path`` is ``schedule/<group>/<name>`` or
        ``schedule-group/<name>``."""
        return f"arn:aws:scheduler:{self.region}:{self.host.account}:{path}"

    # -- compute environments -------------------------------------------------------
    def create_compute_environment(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("CreateComputeEnvironment", req)
        refuse_unsupported("CreateComputeEnvironment", req)
        name = req["computeEnvironmentName"]
        check_name("computeEnvironmentName", name)
        if name in self.ces:
            raise ClientError(f"computeEnvironmentName: {name!r} already exists")
        resources = req.get("computeResources")
        if req["type"] == "MANAGED":
            if not resources:
                raise ClientError("computeResources: required for a MANAGED compute environment")
            self._check_compute_resources(resources)
            if resources["type"] in ("EC2", "SPOT") and not resources.get("instanceRole"):
                raise ClientError("computeResources.instanceRole: Instance role is required.")
        elif resources:
            raise ClientError("computeResources: not allowed for an UNMANAGED compute environment")
        check_range("unmanagedvCpus", req.get("unmanagedvCpus"), 0, 100_000)
        check_tags(req.get("tags"), "tags")
        self._check_local_tags(req.get("tags"))
        arn = self.arn("compute-environment", name)
        ce = {
            "computeEnvironmentName": name,
            "computeEnvironmentArn": arn,
            "ecsClusterArn": self.arn("cluster", f"{name}-local", "ecs"),
            "type": req["type"],
            "state": req.get("state", "ENABLED"),
            "status": "VALID",
            "statusReason": "ComputeEnvironment Healthy",
            "tags": req.get("tags") or {},
            "uuid": str(uuid.uuid4()),
            "containerOrchestrationType": "ECS",
        }
        for key in ("computeResources", "serviceRole", "unmanagedvCpus"):
            if req.get(key) is not None:
                ce[key] = req[key]
        self._put_ce(ce)
        return {"computeEnvironmentName": name, "computeEnvironmentArn": arn}

    def _check_compute_resources(
        self, cr: dict[str, Any], base: dict[str, Any] | None = None
    ) -> None:
        merged = {**(base or {}), **cr}
        for key in ("minvCpus", "maxvCpus", "desiredvCpus"):
            check_range(f"computeResources.{key}", merged.get(key), 0, 100_000)
        low, high = merged.get("minvCpus", 0), merged["maxvCpus"]
        if low > high:
            raise ClientError(f"computeResources.minvCpus: {low} is greater than maxvCpus {high}")
        if merged.get("instanceTypes"):  # checked by name, as AWS does
            expand(merged["instanceTypes"], "computeResources.instanceTypes")
        desired = merged.get("desiredvCpus")
        if desired is not None and not low <= desired <= high:
            raise ClientError(
                f"computeResources.desiredvCpus: {desired} must lie between minvCpus {low} and maxvCpus {high}"
            )

    def _check_local_tags(self, tags: dict[str, str] | None) -> None:
        check_spot_tags(tags or {})
        for key in (MEMORY_TAG, GPU_TAG, SPOT_CAPACITY_TAG):
            if tags and key in tags:
                value = tags[key]
                if not (str(value).isascii() and str(value).isdigit()):
                    raise ClientError(f"tags.{key}: {value!r} is not a whole number")

    def _put_ce(self, ce: dict[str, Any]) -> None:
        name = ce["computeEnvironmentName"]
        self.ces[name] = ce
        self.capacity[name] = environment_capacity(ce, self.host.memory_mib, self.host.cpus)
        self.on_change("ce", name, ce)

    def compute_environment(self, ref: str, field: str = "computeEnvironment") -> dict[str, Any]:
        ce = self.ces.get(name_of(ref)) if ref.startswith("arn:") else self.ces.get(ref)
        if ce is None:
            raise ClientError(f"{field}: compute environment {ref!r} does not exist")
        return ce

    def update_compute_environment(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("UpdateComputeEnvironment", req)
        refuse_unsupported("UpdateComputeEnvironment", req)
        ce = dict(self.compute_environment(req["computeEnvironment"]))
        if req.get("computeResources"):
            if ce["type"] != "MANAGED":
                raise ClientError("computeResources: an UNMANAGED compute environment has none")
            cr = {**ce["computeResources"], **req["computeResources"]}
            self._check_compute_resources(req["computeResources"], ce["computeResources"])
            ce["computeResources"] = cr
        if req.get("unmanagedvCpus") is not None:
            check_range("unmanagedvCpus", req["unmanagedvCpus"], 0, 100_000)
            ce["unmanagedvCpus"] = req["unmanagedvCpus"]
        for key in ("state", "serviceRole"):
            if req.get(key) is not None:
                ce[key] = req[key]
        self._put_ce(ce)
        return {
            "computeEnvironmentName": ce["computeEnvironmentName"],
            "computeEnvironmentArn": ce["computeEnvironmentArn"],
        }

    def delete_compute_environment(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("DeleteComputeEnvironment", req)
        ce = self.compute_environment(req["computeEnvironment"])
        name = ce["computeEnvironmentName"]
        if ce["state"] != "DISABLED":
            raise ClientError(f"computeEnvironment: {name!r} must be DISABLED before it is deleted")
        users = [
            q["jobQueueName"] for q in self.queues.values() if name in self.queue_environments(q)
        ]
        if users:
            raise ClientError(
                f"computeEnvironment: {name!r} is still used by job queue(s) {', '.join(users)}"
            )
        del self.ces[name]
        del self.capacity[name]
        self.on_change("ce", name, None)
        return {}

    def describe_compute_environments(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("DescribeComputeEnvironments", req)
        wanted = req.get("computeEnvironments")
        items = (
            [self.ces[n] for n in sorted(self.ces)]
            if not wanted
            else [ce for ref in wanted if (ce := self._find(self.ces, ref)) is not None]
        )
        page, token = paginate(items, req.get("maxResults"), req.get("nextToken"), 100)
        return with_token({"computeEnvironments": page}, token)

    # -- job queues -----------------------------------------------------------------
    def create_job_queue(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("CreateJobQueue", req)
        refuse_unsupported("CreateJobQueue", req)
        name = req["jobQueueName"]
        check_name("jobQueueName", name)
        if name in self.queues:
            raise ClientError(f"jobQueueName: {name!r} already exists")
        check_range("priority", req["priority"], 0, 1000)
        check_tags(req.get("tags"), "tags")
        order = self._check_order(req.get("computeEnvironmentOrder"))
        kind = req.get("jobQueueType", "ECS")
        if kind not in ("ECS", "ECS_FARGATE"):
            raise ClientError(
                f"jobQueueType: {kind!r} is not supported by the local engine; use ECS or ECS_FARGATE"
            )
        check_state_limits(req.get("jobStateTimeLimitActions"), self.min_state_limit_seconds)
        arn = self.arn("job-queue", name)
        queue = {
            "jobQueueName": name,
            "jobQueueArn": arn,
            "state": req.get("state", "ENABLED"),
            "status": "VALID",
            "statusReason": "JobQueue Healthy",
            "priority": req["priority"],
            "computeEnvironmentOrder": order,
            "tags": req.get("tags") or {},
            "jobQueueType": kind,
            "jobStateTimeLimitActions": req.get("jobStateTimeLimitActions") or [],
        }
        self._put_queue(queue)
        return {"jobQueueName": name, "jobQueueArn": arn}

    def _check_order(self, order: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        if not order:
            raise ClientError(
                "computeEnvironmentOrder: at least one compute environment is required"
            )
        if len(order) > 3:
            raise ClientError(
                f"computeEnvironmentOrder: {len(order)} entries; at most 3 are allowed"
            )
        seen: set[int] = set()
        out = []
        for i, entry in enumerate(order):
            ce = self.compute_environment(
                entry["computeEnvironment"], f"computeEnvironmentOrder[{i}].computeEnvironment"
            )
            if entry["order"] in seen:
                raise ClientError(
                    f"computeEnvironmentOrder[{i}].order: {entry['order']} is used twice"
                )
            seen.add(entry["order"])
            out.append({"order": entry["order"], "computeEnvironment": ce["computeEnvironmentArn"]})
        return sorted(out, key=lambda e: e["order"])

    def _put_queue(self, queue: dict[str, Any]) -> None:
        self.queues[queue["jobQueueName"]] = queue
        self.on_change("queue", queue["jobQueueName"], queue)

    def job_queue(self, ref: str, field: str = "jobQueue") -> dict[str, Any]:
        queue = self._find(self.queues, ref)
        if queue is None:
            raise ClientError(f"{field}: job queue {ref!r} does not exist")
        return queue

    def queue_environments(self, queue: dict[str, Any]) -> list[str]:
        return [name_of(e["computeEnvironment"]) for e in queue["computeEnvironmentOrder"]]

    def fits(self, queue: dict[str, Any], need: Resources) -> bool:
        """Whether one of the queue's compute environments could ever hold ``need``."""
        names = self.queue_environments(queue)
        return any(  # what spot grants, where a rehearsal of a shortage limits it
            need.fits_in(spot_granted(self.ces[n], self.capacity[n]))
            for n in names
            if n in self.capacity
        )

    def update_job_queue(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("UpdateJobQueue", req)
        refuse_unsupported("UpdateJobQueue", req)
        queue = dict(self.job_queue(req["jobQueue"]))
        if req.get("priority") is not None:
            check_range("priority", req["priority"], 0, 1000)
            queue["priority"] = req["priority"]
        if req.get("computeEnvironmentOrder") is not None:
            queue["computeEnvironmentOrder"] = self._check_order(req["computeEnvironmentOrder"])
        if req.get("jobStateTimeLimitActions") is not None:
            check_state_limits(req["jobStateTimeLimitActions"], self.min_state_limit_seconds)
            queue["jobStateTimeLimitActions"] = req["jobStateTimeLimitActions"]
        if req.get("state") is not None:
            queue["state"] = req["state"]
        self._put_queue(queue)
        return {"jobQueueName": queue["jobQueueName"], "jobQueueArn": queue["jobQueueArn"]}

    def delete_job_queue(self, name: str) -> None:
        del self.queues[name]
        self.on_change("queue", name, None)

    def describe_job_queues(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("DescribeJobQueues", req)
        wanted = req.get("jobQueues")
        items = (
            [self.queues[n] for n in sorted(self.queues)]
            if not wanted
            else [q for ref in wanted if (q := self._find(self.queues, ref)) is not None]
        )
        page, token = paginate(items, req.get("maxResults"), req.get("nextToken"), 100)
        return with_token({"jobQueues": page}, token)

    # -- job definitions ------------------------------------------------------------
    def register_job_definition(self, req: dict[str, Any], min_timeout: int) -> dict[str, Any]:
        validate_request("RegisterJobDefinition", req)
        refuse_unsupported("RegisterJobDefinition", req)
        name = req["jobDefinitionName"]
        check_name("jobDefinitionName", name)
        fargate = "FARGATE" in (req.get("platformCapabilities") or [])
        container = req.get("containerProperties")
        if req["type"] == "multinode":
            if container:
                raise ClientError(
                    "containerProperties: a multinode job definition gives its containers in "
                    "nodeProperties.nodeRangeProperties"
                )
            check_node_properties(req.get("nodeProperties"), fargate)
            for i, r in enumerate(req["nodeProperties"]["nodeRangeProperties"]):
                check_container(
                    r["container"], f"nodeProperties.nodeRangeProperties[{i}].container"
                )
        else:
            if req.get("nodeProperties"):
                raise ClientError("nodeProperties: only a multinode job definition has them")
            if not container:
                raise ClientError("containerProperties: required for a container job definition")
            if not container.get("image"):
                raise ClientError("containerProperties.image: required")
            job_resources(container, None, fargate)
            check_container(container, "containerProperties")
        check_parameters(req.get("parameters"), "parameters")
        check_tags(req.get("tags"), "tags")
        RetryStrategy.from_api(req.get("retryStrategy"))
        check_timeout(req.get("timeout"), min_timeout)
        revision = 1 + max(
            (d["revision"] for d in self.jobdefs.values() if d["jobDefinitionName"] == name),
            default=0,
        )
        arn = self.arn("job-definition", f"{name}:{revision}")
        jobdef: dict[str, Any] = {
            "jobDefinitionName": name,
            "jobDefinitionArn": arn,
            "revision": revision,
            "status": "ACTIVE",
            "type": req["type"],
            "parameters": req.get("parameters") or {},
            "tags": req.get("tags") or {},
            "platformCapabilities": req.get("platformCapabilities") or ["EC2"],
            "containerOrchestrationType": "ECS",
        }
        if container:
            jobdef["containerProperties"] = with_defaults(container, fargate)
        else:
            props = req["nodeProperties"]
            jobdef["nodeProperties"] = {
                **props,
                "nodeRangeProperties": [
                    {**r, "container": with_defaults(r["container"], False)}
                    for r in props["nodeRangeProperties"]
                ],
            }
        for key in ("retryStrategy", "timeout", "propagateTags"):
            if req.get(key) is not None:
                jobdef[key] = req[key]
        self._put_jobdef(jobdef)
        return {"jobDefinitionName": name, "jobDefinitionArn": arn, "revision": revision}

    def _put_jobdef(self, jobdef: dict[str, Any]) -> None:
        key = f"{jobdef['jobDefinitionName']}:{jobdef['revision']}"
        self.jobdefs[key] = jobdef
        self.on_change("jobdef", key, jobdef)

    def job_definition(self, ref: str, field: str = "jobDefinition") -> dict[str, Any]:
        """Resolve ``name`` (latest ACTIVE revision), ``name:N`` or an ARN."""
        key = name_of(ref) if ref.startswith("arn:") else ref
        if ":" in key:
            jobdef = self.jobdefs.get(key)
        else:
            active = [
                d
                for d in self.jobdefs.values()
                if d["jobDefinitionName"] == key and d["status"] == "ACTIVE"
            ]
            jobdef = max(active, key=lambda d: d["revision"], default=None)
        if jobdef is None:
            raise ClientError(
                f"{field}: job definition {ref!r} does not exist (or has no ACTIVE revision)"
            )
        return jobdef

    def deregister_job_definition(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("DeregisterJobDefinition", req)
        ref = req["jobDefinition"]
        if ":" not in name_of(ref):
            raise ClientError(
                f"jobDefinition: {ref!r} must name a revision (name:revision or an ARN)"
            )
        jobdef = dict(self.job_definition(ref))
        jobdef["status"] = "INACTIVE"
        self._put_jobdef(jobdef)
        return {}

    def describe_job_definitions(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("DescribeJobDefinitions", req)
        items: Iterable[dict[str, Any]] = sorted(
            self.jobdefs.values(), key=lambda d: (d["jobDefinitionName"], d["revision"])
        )
        if req.get("jobDefinitions"):
            wanted = set()
            for ref in req["jobDefinitions"]:
                key = name_of(ref)
                wanted.add(key)
            items = [
                d
                for d in items
                if f"{d['jobDefinitionName']}:{d['revision']}" in wanted
                or d["jobDefinitionName"] in wanted
            ]
        if req.get("jobDefinitionName"):
            items = [d for d in items if d["jobDefinitionName"] == req["jobDefinitionName"]]
        if req.get("status"):
            items = [d for d in items if d["status"] == req["status"]]
        page, token = paginate(list(items), req.get("maxResults"), req.get("nextToken"), 100)
        return with_token({"jobDefinitions": page}, token)

    # -- tags -----------------------------------------------------------------------
    def retag(
        self, kind: str, name: str, change: Callable[[dict[str, str]], dict[str, str]] | None
    ) -> dict[str, str]:
        """Apply ``change`` (None: none) to the tags of a compute environment, queue or job definition."""
        table, put = {
            "compute-environment": (self.ces, self._put_ce),
            "job-queue": (self.queues, self._put_queue),
            "job-definition": (self.jobdefs, self._put_jobdef),
        }[kind]
        current = table.get(name)
        if current is None:
            raise ClientError(f"resourceArn: {kind} {name!r} does not exist")
        tags = dict(current.get("tags") or {})
        if change is None:
            return tags
        tags = change(tags)
        check_tags(tags, "tags")
        if kind == "compute-environment":
            self._check_local_tags(tags)
        put({**current, "tags": tags})
        return tags

    # -- loading --------------------------------------------------------------------
    def load(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "ce":
            name = data["computeEnvironmentName"]
            self.ces[name] = data
            self.capacity[name] = environment_capacity(data, self.host.memory_mib, self.host.cpus)
        elif kind == "queue":
            self.queues[data["jobQueueName"]] = data
        elif kind == "jobdef":
            self.jobdefs[f"{data['jobDefinitionName']}:{data['revision']}"] = data

    @staticmethod
    def _find(table: dict[str, dict[str, Any]], ref: str) -> dict[str, Any] | None:
        return table.get(name_of(ref) if ref.startswith("arn:") else ref)


# The members AWS fills into a job definition's container when they are not given.
EMPTY_CONTAINER_LISTS = (
    "command",
    "volumes",
    "environment",
    "mountPoints",
    "ulimits",
    "resourceRequirements",
    "secrets",
)


def with_defaults(container: dict[str, Any], fargate: bool) -> dict[str, Any]:
    """A container as DescribeJobDefinitions shows it: AWS's empty lists, and on Fargate
    its platform version and network defaults."""
    out = {**{k: [] for k in EMPTY_CONTAINER_LISTS}, **container}
    if fargate:
        out.setdefault("fargatePlatformConfiguration", {"platformVersion": "LATEST"})
        out.setdefault("networkConfiguration", {"assignPublicIp": "DISABLED"})
    return out


def check_container(container: dict[str, Any], field: str) -> None:
    """A container's command and environment hold what a process can."""
    check_command(container.get("command"), f"{field}.command")
    check_env(container.get("environment"), f"{field}.environment")


def check_env(env: list[dict[str, str]] | None, field: str) -> None:
    for i, pair in enumerate(env or []):
        name = pair.get("name") or ""
        if not name or name.startswith("AWS_BATCH") or "=" in name:
            raise ClientError(
                f"{field}[{i}].name: {name!r:.80} is not allowed; names must be non-empty, "
                "without '=', and not start with AWS_BATCH"
            )
        check_process_text(f"{field}[{i}].name", name)
        check_process_text(f"{field}[{i}].value", pair.get("value") or "")


def check_command(command: list[str] | None, field: str) -> None:
    for i, arg in enumerate(command or []):
        check_process_text(f"{field}[{i}]", arg)


def check_parameters(parameters: dict[str, str] | None, field: str) -> None:
    """``Ref::name`` values end up in the command: the same rules as the command's."""
    for name, value in (parameters or {}).items():
        check_process_text(f"{field}.{name}", value)


def check_process_text(field: str, text: str) -> None:
    """What a process's argv or environment can hold: no NUL byte (the OS refuses one)."""
    if "\x00" in text:
        raise ClientError(
            f"{field}: contains a NUL byte (\\x00), which no command or environment can hold"
        )


def check_tags(tags: dict[str, str] | None, field: str) -> None:
    """AWS's tag limits: at most 50, keys 1-128 characters not starting with aws:, values up to 256."""
    if not tags:
        return
    if len(tags) > MAX_TAGS:
        raise ClientError(f"{field}: {len(tags)} tags; at most {MAX_TAGS} are allowed")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            raise ClientError(
                f"{field}: key {key!r:.140} is not allowed; keys are 1-128 characters and may not start with aws:"
            )
        if len(value) > 256:
            raise ClientError(
                f"{field}.{key}: value is {len(value)} characters; at most 256 are allowed"
            )


def check_timeout(timeout: dict[str, Any] | None, min_timeout: int) -> int | None:
    if not timeout or timeout.get("attemptDurationSeconds") is None:
        return None
    seconds = timeout["attemptDurationSeconds"]
    check_range("timeout.attemptDurationSeconds", seconds, min_timeout, 14 * 24 * 3600)
    return seconds
