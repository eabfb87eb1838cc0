"""A real service per test: started detached through discovery, driven by real boto3."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchbook.server.discovery import Service, ensure_service, stop_service
from batchbook.validation import validate_response
from batchbook.vocabulary import FINAL


def start(state_dir: Path, *extra: str) -> Service:
    return ensure_service(
        state_dir, serve_args=["--min-timeout", "1", "--min-state-limit", "1", *extra]
    )


def checked_client(service: Service, name: str = "batch", **config: Any) -> Any:
    """A boto3 client whose every 200 response is checked against botocore's output shape."""
    client = service.client(name, **config)
    service_name = name if name in ("logs", "scheduler") else "batch"

    def check(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
        if response_dict["status_code"] == 200:
            validate_response(operation_model.name, json.loads(response_dict["body"]), service_name)

    client.meta.events.register("before-parse", check)
    return client


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = start(tmp_path / "state")
    yield svc
    stop_service(svc.state_dir)


@pytest.fixture
def batch(service: Service) -> Any:
    return checked_client(service)


@pytest.fixture
def logs(service: Service) -> Any:
    return checked_client(service, "logs")


def make_queue(batch: Any, name: str = "q", max_vcpus: int = 4) -> None:
    batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="MANAGED",
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "desiredvCpus": 0,
            "maxvCpus": max_vcpus,
            "instanceTypes": ["optimal"],
            "subnets": ["subnet-1"],
            "securityGroupIds": ["sg-1"],
            "instanceRole": "ecsInstanceRole",
        },
    )
    batch.create_job_queue(
        jobQueueName=name,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": f"{name}-ce"}],
    )


def make_jobdef(batch: Any, name: str = "py", code: str = "pass", **extra: Any) -> str:
    return batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": "python:3.11",
            "command": ["python", "-c", code],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
        },
        **extra,
    )["jobDefinitionArn"]


def wait_jobs(batch: Any, job_ids: list[str], timeout: float = 60) -> list[dict[str, Any]]:
    """Poll DescribeJobs, as any Batch client must, until every job is final."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = []
        for i in range(0, len(job_ids), 100):
            jobs += batch.describe_jobs(jobs=job_ids[i : i + 100])["jobs"]
        if all(j["status"] in FINAL for j in jobs) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.02)
