"""A Batch endpoint and an object store: everything the function layer talks to.

The local backend is the local service (started on first use) with a store folder
in its state dir; the AWS backend will be real Batch with an S3 store. Nothing
above this module knows which one it has.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from batchbook.errors import (
    BatchbookError,
    ClientError,
    EnvironmentMismatch,
    ResourceNotFound,
    ServerError,
    ThrottlingError,
)
from batchbook.functions import environment
from batchbook.functions.objects import FolderStore, ObjectStore
from batchbook.vocabulary import FINAL, MAX_DESCRIBE_JOBS, name_of

RUNNER_JOBDEF = "batchbook-runner"
DEFAULT_QUEUE = "batchbook"
DEFAULT_MEMORY_MIB = 2048


class Backend:
    """Batch and CloudWatch Logs clients, an object store, and the default queue."""

    def __init__(self, service: Any, store: ObjectStore, queue: str = DEFAULT_QUEUE):
        self.service = service
        self.batch = MappedErrors(service.client("batch"))
        self.logs = MappedErrors(service.client("logs"))
        self.store = store
        self.queue = queue
        self._ready: set[str] = set()
        self._environments: dict[frozenset[str], dict[str, Any]] = {}  # the worker's, by modules
        self._matching: set[frozenset[str]] = set()  # module sets found to match here
        self._vcpus: dict[str, tuple[float, float]] = {}  # queue -> (when looked up, vCPUs)
        self._lock = threading.Lock()

    @classmethod
    def local(cls, state_dir: str | Path | None = None) -> Backend:
        from batchbook.server.discovery import ensure_service

        service = ensure_service(state_dir)
        return cls(service, FolderStore(service.state_dir / "store"))

    # ------------------------------------------------------------ set-up on first use
    def ensure_queue(self, name: str | None) -> str:
        """The queue to submit to; the default one (all of this machine's CPUs) is made if missing."""
        name = name or self.queue
        with self._lock:
            if name in self._ready:
                return name
            if not self.batch.describe_job_queues(jobQueues=[name])["jobQueues"]:
                if name != DEFAULT_QUEUE:
                    raise ClientError(f"queue: job queue {name!r} does not exist")
                create_queue(self.batch, DEFAULT_QUEUE, os.cpu_count() or 1)
            self._ready.add(name)
            return name

    def job_definition(self) -> str:
        with self._lock:
            if RUNNER_JOBDEF in self._ready:
                return RUNNER_JOBDEF
            found = self.batch.describe_job_definitions(
                jobDefinitionName=RUNNER_JOBDEF, status="ACTIVE"
            )["jobDefinitions"]
            if not found:
                self.batch.register_job_definition(
                    jobDefinitionName=RUNNER_JOBDEF,
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
            self._ready.add(RUNNER_JOBDEF)
            return RUNNER_JOBDEF

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

    def wait_for_change(
        self,
        after: int,
        timeout: float,
        until_final: list[str] | None = None,
        finished: bool = False,
    ) -> int:
        """Block until the Batch state may have changed since version ``after``; the new version.

        ``until_final``: wake only once one of these jobs may have become final.
        ``finished``: count only changes in which some job became final.
        """
        return self.service.wait_for_change(after, timeout, until_final, finished)

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
    def check_environment(self, modules: set[str]) -> None:
        """Raise EnvironmentMismatch if the worker's Python or these modules differ from here."""
        key = frozenset(modules)
        if key in self._matching:
            return
        remote = self._environments.get(key)
        if remote is None:
            remote = self._probe(sorted(modules), self.ensure_queue(None))
            self._environments[key] = remote
        problems = environment.differences(environment.describe(sorted(modules)), remote)
        if not problems:
            self._matching.add(key)  # checked once per set of modules and backend
        else:
            raise EnvironmentMismatch(
                "the worker's environment differs from this one:\n  - "
                + "\n  - ".join(problems)
                + "\nInstall the same versions on the worker (or here), or rebuild the worker image."
            )

    def _probe(self, modules: list[str], queue: str) -> dict[str, Any]:
        key = f"probes/{uuid.uuid4().hex}.json"
        job = self.batch.submit_job(
            jobName="batchbook-preflight",
            jobQueue=queue,
            jobDefinition=self.job_definition(),
            containerOverrides={
                "command": [
                    "python",
                    "-m",
                    "batchbook.functions.environment",
                    self.store.url,
                    key,
                    *modules,
                ],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "512"},
                ],
            },
        )["jobId"]
        (detail,) = self.wait_jobs([job], timeout=300)
        if detail["status"] != "SUCCEEDED":
            raise EnvironmentMismatch(
                f"the pre-flight probe job {job} could not run on the worker: "
                f"{detail['status']} {detail.get('statusReason', '')}"
            )
        return json.loads(bytes(self.store.get(key)))


def create_queue(
    batch: Any, name: str, max_vcpus: int, priority: int = 1, ce: str | None = None
) -> None:
    """A job queue ``name`` on compute environment ``ce`` (default: also ``name``; made if missing).

    ``batch`` is a Batch client (boto3's, or anything with its method names: a LocalBatch).
    """
    ce = ce or name
    if not batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"]:
        batch.create_compute_environment(
            computeEnvironmentName=ce,
            type="MANAGED",
            computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": max_vcpus},
        )
    batch.create_job_queue(
        jobQueueName=name,
        priority=priority,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )


class MappedErrors:
    """A boto3 client whose errors arrive as batchbook.errors (the one exception tree)."""

    # the client's own helpers, not operations: passed through as they are
    HELPERS = frozenset({"get_paginator", "get_waiter", "can_paginate", "close", "meta"})

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        operation = self._client.meta.method_to_api_mapping.get(name)
        if not callable(attr) or name in self.HELPERS or operation is None:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            from botocore.exceptions import ClientError as BotoClientError

            try:
                return attr(*args, **kwargs)
            except BotoClientError as e:
                raise mapped_error(e, operation) from e

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
    elif status < 500:
        mapped = ClientError(message)
    else:
        mapped = ServerError(f"{code}: {message}")
    mapped.operation = operation or getattr(e, "operation_name", None)
    mapped.request_id = meta.get("RequestId")
    mapped.http_status = status
    return mapped


_current: Backend | None = None
_current_lock = threading.Lock()


def use(state_dir: str | Path | None = None) -> Backend:
    """Point batchbook at the local engine of ``state_dir`` (default ``~/.batchbook/local``)."""
    global _current
    with _current_lock:
        _current = Backend.local(state_dir)
        return _current


def current() -> Backend:
    """The backend in use, the default local one on first call."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Backend.local()
        return _current
