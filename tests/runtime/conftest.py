from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchbook.functions.backend import create_queue
from batchbook.runtime.local import LocalBatch


def setup_local(
    lb: LocalBatch, max_vcpus: int = 4, queue: str = "q", ce: str = "ce", priority: int = 1
) -> None:
    create_queue(lb, queue, max_vcpus, priority, ce=ce)
    if "py:1" not in lb.engine.registry.jobdefs:
        lb.register_job_definition(
            jobDefinitionName="py",
            type="container",
            containerProperties={
                "image": "python:3.11",
                "command": ["python", "-c", "pass"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "512"},
                ],
            },
        )


def run_python(
    lb: LocalBatch, code: str, *, name: str = "job", queue: str = "q", wait: bool = True, **kw: Any
) -> dict[str, Any]:
    """Submit ``python -c code`` and (by default) wait for it; return its DescribeJobs detail."""
    overrides = kw.pop("containerOverrides", {})
    overrides.setdefault("command", ["python", "-c", code])
    job_id = lb.submit_job(
        jobName=name, jobQueue=queue, jobDefinition="py", containerOverrides=overrides, **kw
    )["jobId"]
    if not wait:
        return {"jobId": job_id}
    lb.wait([job_id], timeout=60)
    return lb.describe_jobs(jobs=[job_id])["jobs"][0]


def log_lines(lb: LocalBatch, detail: dict[str, Any], attempt: int = -1) -> list[str]:
    stream = detail["attempts"][attempt]["container"]["logStreamName"]
    return [message for _, message in lb.log_events(stream)]


@pytest.fixture
def lb(tmp_path: Path) -> Iterator[LocalBatch]:
    engine = LocalBatch(
        tmp_path / "state", min_timeout_seconds=1, kill_grace_seconds=0.5, memory_check_seconds=0.05
    )
    setup_local(engine)
    yield engine
    engine.close()


PYTHON = sys.executable
