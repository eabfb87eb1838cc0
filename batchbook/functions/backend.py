"""The backend contract: a Batch endpoint and an object store, all the function layer
(and the notebook and cost layers above it) ever talks to.

- :class:`BatchEndpoint`: Batch and CloudWatch Logs clients (boto3's, errors mapped into
  batchbook's tree), plus "wait until something may have changed" (the local service's
  long-poll; polling behind one shared rate limiter elsewhere).
- :class:`~batchbook.functions.objects.ObjectStore`: put, get, get a range, list, delete.

:class:`Backend` is both, with what every implementation shares (the runner's job
definition, describing jobs 100 ids a call, the pre-flight check of the worker's
interpreter). :class:`~batchbook.functions.local_backend.LocalBackend` is the local
engine's. :func:`batchbook.functions.backends.use` picks one (also as a context manager); nothing
above knows which.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from batchbook import interpreter
from batchbook.errors import (
    BatchbookError,
    ClientError,
    Conflict,
    EnvironmentMismatch,
    ResourceNotFound,
    ServerError,
    ServiceUnavailable,
    ThrottlingError,
)
from batchbook.functions.objects import ObjectStore
from batchbook.vocabulary import FINAL, MAX_DESCRIBE_JOBS, name_of

RUNNER_JOBDEF = "batchbook-runner"
DEFAULT_QUEUE = "batchbook"
DEFAULT_MEMORY_MIB = 2048
# The instance profile a MANAGED EC2 compute environment names (AWS requires one; the local
# engine records it). The AWS set-up will make its own.
LOCAL_INSTANCE_ROLE = "ecsInstanceRole"
LOCAL_SCHEDULER_ROLE = "arn:aws:iam::000000000000:role/batchbook-scheduler"


class BatchEndpoint(Protocol):
    """Where jobs run: Batch and CloudWatch Logs, and a way to wait for news."""

    batch: Any  # a boto3 Batch client whose errors are batchbook.errors
    logs: Any  # the same for CloudWatch Logs

    def wait_for_change(
        self,
        after: int,
        timeout: float,
        until_final: list[str] | None = None,
        finished: bool = False,
    ) -> int:
        """Block until the Batch state may have changed since version ``after`` (or
        ``timeout`` seconds); the new version. ``until_final``: wake only once one of these
        jobs may have become final; ``finished``: count only changes in which one did."""
        ...


class Backend:
    """A Batch endpoint and an object store, with what every implementation shares.

    Subclasses give the clients, the store, ``wait_for_change`` and ``worker_interpreter``.
    As a context manager (``with batch.use(...):``) it is the current backend inside,
    and the one before it is again after.
    """

    def __init__(
        self,
        batch: Any,
        logs: Any,
        store: ObjectStore,
        queue: str = DEFAULT_QUEUE,
        reconnect: Callable[[str], Any] | None = None,
        scheduler: Callable[[], Any] | None = None,
    ):
        """``reconnect(service_name)``: a new client once the endpoint stopped answering;
        ``scheduler()``: EventBridge Scheduler's client (batch.schedule), made on first use."""
        self.batch = MappedErrors(batch, _bind(reconnect, "batch"))
        self.logs = MappedErrors(logs, _bind(reconnect, "logs"))
        self._new_scheduler = scheduler
        self._scheduler: MappedErrors | None = None
        self._reconnect_to = reconnect
        self.store = store
        self.queue = queue
        self._ready: set[str] = set()
        self._ready_secrets: dict[str, str] = {}  # container with secrets -> its revision
        self._plain: dict[str, Any] | None = None  # the runner's revision without secrets
        # module sets found to match the worker's -> this interpreter's description of them
        self._matching: dict[frozenset[str], dict[str, Any]] = {}
        self._vcpus: dict[str, tuple[float, float]] = {}  # queue -> (when looked up, vCPUs)
        self._lock = threading.Lock()
        self._previous: list[Backend | None] = []  # the backends that were current before

    @property
    def scheduler(self) -> MappedErrors:
        """EventBridge Scheduler's client on this endpoint (see batchbook.functions.schedule)."""
        if self._scheduler is None:
            if self._new_scheduler is None:
                raise ClientError("schedule: this backend's endpoint has no EventBridge Scheduler")
            client = self._new_scheduler()
            self._scheduler = MappedErrors(client, _bind(self._reconnect_to, "scheduler"))
        return self._scheduler

    # ------------------------------------------------------------ the contract's rest
    def wait_for_change(
        self,
        after: int,
        timeout: float,
        until_final: list[str] | None = None,
        finished: bool = False,
    ) -> int:
        raise NotImplementedError

    def worker_interpreter(self, modules: list[str]) -> dict[str, Any]:
        """What the workers run: ``batchbook.interpreter.describe(modules)`` there."""
        raise NotImplementedError

    def log_token(self, line: int) -> str | None:
        """A GetLogEvents token that reads a stream forward from line ``line``, if the
        endpoint's tokens allow making one (CloudWatch's are opaque: None)."""
        return None

    def worker_environment(self) -> dict[str, str]:
        """Environment variables every job needs (to reach the store, say)."""
        return self.store.worker_environment()

    def scheduler_role(self) -> str:
        """The IAM role EventBridge Scheduler submits a schedule's jobs with."""
        return LOCAL_SCHEDULER_ROLE  # the local engine's schedules take any role

    def schedule_firings(
        self, group: str, name: str, catch_up: bool | None = None
    ) -> dict[str, Any] | None:
        """What the endpoint keeps of a schedule's firings (fired, missed, next) and, with
        ``catch_up``, sets it; None: it keeps none (EventBridge Scheduler)."""
        return None

    def missing_queue(self, name: str) -> None:
        """What to do when the queue ``name`` does not exist: make it, or say so."""
        raise ClientError(f"queue: job queue {name!r} does not exist")

    # ------------------------------------------------------------ set-up on first use
    def ensure_queue(self, name: str | None) -> str:
        """The queue to submit to (checked once; see missing_queue)."""
        name = name or self.queue
        with self._lock:
            if name in self._ready:
                return name
            if not self.batch.describe_job_queues(jobQueues=[name])["jobQueues"]:
                self.missing_queue(name)
            self._ready.add(name)
            return name

    runner = RUNNER_JOBDEF  # the runner's job definition (name)

    needs_execution_role = False  # whether secrets need the definition's executionRoleArn

    def job_definition(self, secrets: dict[str, str] | None = None) -> str:
        """The runner's job definition, as ``name:revision``: its latest ACTIVE revision
        without secrets (looked up once; see missing_job_definition). With ``secrets``, a
        revision of that one which has them (Batch takes secrets only from a job definition,
        never from SubmitJob's overrides), registered once and found again; a plain map never
        runs on it, so no other map's job gets them."""
        with self._lock:
            plain = self._plain_runner()
            if not secrets:
                return f"{plain['jobDefinitionName']}:{plain['revision']}"
            return self._with_secrets(plain, secrets)

    def _revisions(self) -> list[dict[str, Any]]:
        """The runner's ACTIVE revisions (every page)."""
        name, _, revision = self.runner.partition(":")
        if revision:  # pinned by the configuration
            return list(
                self.batch.describe_job_definitions(jobDefinitions=[self.runner])["jobDefinitions"]
            )
        out: list[dict[str, Any]] = []
        request: dict[str, Any] = {"jobDefinitionName": name, "status": "ACTIVE"}
        while True:
            page = self.batch.describe_job_definitions(**request)
            out += page["jobDefinitions"]
            if not page.get("nextToken"):
                return out
            request["nextToken"] = page["nextToken"]

    def _plain_runner(self) -> dict[str, Any]:
        if self._plain is None:
            found = self._revisions()
            if not found:
                self.missing_job_definition()
                found = self._revisions()
            plain = [d for d in found if not (d.get("containerProperties") or {}).get("secrets")]
            if not plain:
                raise ClientError(
                    f"job definition: every ACTIVE revision of {self.runner} has secrets; "
                    "register one without them for maps that ask for none"
                )
            self._plain = max(plain, key=lambda d: d["revision"])
        return self._plain

    def _with_secrets(self, plain: dict[str, Any], secrets: dict[str, str]) -> str:
        wanted = [{"name": k, "valueFrom": v} for k, v in sorted(secrets.items())]
        container = {**plain["containerProperties"], "secrets": wanted}
        key = json.dumps(container, sort_keys=True)
        if key in self._ready_secrets:
            return self._ready_secrets[key]
        if self.needs_execution_role and not container.get("executionRoleArn"):
            raise ClientError(
                f"secrets: the runner's job definition {plain['jobDefinitionName']}:"
                f"{plain['revision']} has no executionRoleArn, which Batch needs to read "
                "secrets; register the runner with an execution role that may read them "
                "(secretsmanager:GetSecretValue, ssm:GetParameters)"
            )
        name = plain["jobDefinitionName"]
        same = [
            d
            for d in self._revisions()
            if json.dumps(d.get("containerProperties"), sort_keys=True) == key
        ]
        if same:
            ref = f"{name}:{max(d['revision'] for d in same)}"
        else:
            kept = {
                k: plain[k]
                for k in ("parameters", "retryStrategy", "timeout", "platformCapabilities",
                          "propagateTags", "tags", "schedulingPriority")
                if plain.get(k)
            }  # fmt: skip
            made = self.batch.register_job_definition(
                jobDefinitionName=name, type="container", containerProperties=container, **kept
            )
            ref = f"{name}:{made['revision']}"
        self._ready_secrets[key] = ref
        return ref

    def missing_job_definition(self) -> None:
        """What to do when the runner's job definition does not exist: register the local one."""
        self.batch.register_job_definition(
            jobDefinitionName=self.runner,
            type="container",
            containerProperties={
                "image": "batchbook-local",
                "command": ["python", "-m", "batchbook.runner"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": str(DEFAULT_MEMORY_MIB)},
                ],
            },
        )

    def runner_command(
        self, store_url: str, run_id: str
    ) -> tuple[list[str] | None, dict[str, str]]:
        """How a map's job names its run: (the command override, the job's parameters).
        Locally the command itself; where the job definition's command carries ``Ref::store``
        and ``Ref::run`` (AWS's, made by setup), the parameters."""
        return ["python", "-m", "batchbook.runner", store_url, run_id], {}

    def queue_vcpus(self, queue: str) -> float:
        """The vCPUs of a queue's compute environments (looked up at most every 30 s)."""
        cached = self._vcpus.get(queue)
        if cached is not None and time.monotonic() - cached[0] < 30:
            return cached[1]
        q = self.batch.describe_job_queues(jobQueues=[queue])["jobQueues"][0]
        names = [name_of(o["computeEnvironment"]) for o in q["computeEnvironmentOrder"]]
        ces = self.batch.describe_compute_environments(computeEnvironments=names)
        total = sum(
            ce.get("computeResources", {}).get("maxvCpus", 0) for ce in ces["computeEnvironments"]
        )
        self._vcpus[queue] = (time.monotonic(), total)
        return total

    # ------------------------------------------------------------ jobs
    def describe(self, job_ids: list[str]) -> list[dict[str, Any]]:
        out = []
        for i in range(0, len(job_ids), MAX_DESCRIBE_JOBS):
            out += self.batch.describe_jobs(jobs=job_ids[i : i + MAX_DESCRIBE_JOBS])["jobs"]
        return out

    def wait_jobs(self, job_ids: list[str], timeout: float | None = None) -> list[dict[str, Any]]:
        deadline = None if timeout is None else time.monotonic() + timeout
        version = 0
        while True:
            jobs = self.describe(job_ids)
            left = None if deadline is None else deadline - time.monotonic()
            if all(j["status"] in FINAL for j in jobs) or (left is not None and left <= 0):
                return jobs
            version = self.wait_for_change(
                version, 10 if left is None else min(left, 10), [j["jobId"] for j in jobs]
            )

    # ------------------------------------------------------------ pre-flight
    def check_environment(self, modules: set[str]) -> dict[str, Any]:
        """This interpreter's description for ``modules`` (the worker checks it again when it
        starts); EnvironmentMismatch now if the worker's Python or these modules differ.
        Costs no job: the backend knows what its workers run."""
        key = frozenset(modules)
        here = self._matching.get(key)
        if here is None:  # checked once per set of modules and backend
            here = interpreter.describe(sorted(modules))
            problems = interpreter.differences(here, self.worker_interpreter(sorted(modules)))
            if problems:
                raise EnvironmentMismatch(interpreter.mismatch_message(problems))
            self._matching[key] = here
        return here

    # ------------------------------------------------------------ as the current backend
    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _current
        with _current_lock:
            if _current is self and self._previous:
                _current = self._previous.pop()


def create_queue(
    batch: Any, name: str, max_vcpus: int, priority: int = 1, ce: str | None = None
) -> None:
    """A job queue ``name`` on compute environment ``ce`` (default: also ``name``; made if missing).

    ``batch`` is a Batch client (boto3's, or anything with its method names: a LocalBatch).
    Idempotent across processes: one that another made first is taken as it is.
    """
    ce = ce or name
    if not batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"]:
        _unless_made_meanwhile(
            batch.create_compute_environment,
            computeEnvironmentName=ce,
            type="MANAGED",
            computeResources={
                "type": "EC2",
                "minvCpus": 0,
                "maxvCpus": max_vcpus,
                "instanceRole": LOCAL_INSTANCE_ROLE,
            },
        )
    _unless_made_meanwhile(
        batch.create_job_queue,
        jobQueueName=name,
        priority=priority,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )


def _unless_made_meanwhile(create: Any, **request: Any) -> None:
    try:
        create(**request)
    except ClientError as e:  # another client made it between our look and now
        if "already exists" not in str(e):
            raise


def _bind(reconnect: Callable[[str], Any] | None, service: str) -> Callable[[], Any] | None:
    if reconnect is None:
        return None
    return lambda: reconnect(service)


class MappedErrors:
    """A boto3 client whose errors arrive as batchbook.errors (the one exception tree).

    When the endpoint cannot be reached, ``reconnect`` (if given) is asked for a new client
    (the local backend finds, or starts, its service again) and the call is made once more;
    if that fails too, ServiceUnavailable says what to do.
    """

    # the client's own helpers, not operations: passed through as they are
    HELPERS = frozenset({"get_paginator", "get_waiter", "can_paginate", "close", "meta"})

    def __init__(self, client: Any, reconnect: Callable[[], Any] | None = None):
        self._client = client
        self._reconnect = reconnect

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if not callable(attr) or name in self.HELPERS or operation is None:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            from botocore.exceptions import ClientError as BotoClientError
            from botocore.exceptions import ConnectionError as BotoConnectionError

            try:
                try:
                    return getattr(self._client, name)(*args, **kwargs)
                except BotoConnectionError:
                    if self._reconnect is None:
                        raise
                    self._client = self._reconnect()  # the service came back, maybe elsewhere
                    return getattr(self._client, name)(*args, **kwargs)
            except BotoClientError as e:
                raise mapped_error(e, operation) from e
            except BotoConnectionError as e:
                raise ServiceUnavailable(
                    f"{operation}: {self._client.meta.endpoint_url} does not answer ({e}); "
                    "start the service again (batchbook serve, or batch.use()) and retry"
                ) from e

        return call


def mapped_error(e: Any, operation: str | None = None) -> BatchbookError:
    """The batchbook error for a botocore ClientError, keeping the operation, request id and
    HTTP status (and, through the message, the field: ClientError.field)."""
    error = e.response.get("Error", {})
    meta = e.response.get("ResponseMetadata", {})
    code, message = error.get("Code", ""), error.get("Message", str(e))
    status = meta.get("HTTPStatusCode", 500)
    mapped: BatchbookError
    if code in ("TooManyRequestsException", "ThrottlingException"):
        mapped = ThrottlingError(message)
    elif code == "ResourceNotFoundException":
        mapped = ResourceNotFound(message)
    elif code == "ConflictException":
        mapped = Conflict(message)
    elif status < 500:
        mapped = ClientError(message)
    else:
        mapped = ServerError(f"{code}: {message}")
    mapped.operation = operation or getattr(e, "operation_name", None)
    mapped.request_id = meta.get("RequestId")
    mapped.http_status = status
    return mapped


_current: Backend | None = None  # the backend maps go to (see batchbook.functions.backends)
_current_lock = threading.Lock()


def make_current(backend: Backend) -> Backend:
    """``backend`` is the current one from now on (the one before it comes back at the end of
    its ``with`` block)."""
    global _current
    with _current_lock:
        backend._previous.append(_current)
        _current = backend
    return backend


def current_or_none() -> Backend | None:
    with _current_lock:
        return _current
