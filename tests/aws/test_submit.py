"""What a map sends AWS Batch, read back from the job moto's server stores: exactly one
SubmitJob, the array size, resources, retry strategy, timeout and tags, and a command that
carries ids only (the payload is in S3)."""

from __future__ import annotations

from typing import Any

import pytest

import batchbook as batch
from batchbook.errors import ClientError
from batchbook.functions.submission import INFRA_ATTEMPTS
from tests.aws.conftest import REGION, batchbook, client


def double(x: int) -> int:
    return 2 * x


def test_a_map_is_one_submit_job_of_ids_only(aws_env: dict[str, str]) -> None:
    assert batchbook("aws", "setup", "--region", REGION, "--bucket", "lab-bucket").returncode == 0
    calls: list[str] = []
    sent: list[dict[str, Any]] = []  # what moto's job does not keep (retries, resources)
    with batch.use("aws") as backend:
        events = backend.batch.meta.events
        events.register("before-call.batch.*", lambda model, **_: calls.append(model.name))
        events.register(
            "before-parameter-build.batch.SubmitJob", lambda params, **_: sent.append(dict(params))
        )
        job = batch.map(
            double, range(10), chunksize=2, vcpus=2, memory="1 GiB", retries=1, timeout=120
        )
        assert calls.count("SubmitJob") == 1
    [stored] = client("batch").describe_jobs(jobs=[job.job_id])["jobs"]
    assert stored["jobQueue"].endswith(":job-queue/batchbook")
    assert stored["jobDefinition"].endswith(":job-definition/batchbook-runner:1")
    assert stored["arrayProperties"]["size"] == 5
    assert stored["parameters"] == {"store": "s3://lab-bucket/batchbook", "run": job.id}
    [request] = sent
    assert request["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "1024"},
    ]
    assert "command" not in request["containerOverrides"]  # the definition's, with Ref::run
    retry: dict[str, Any] = request["retryStrategy"]
    assert retry["attempts"] == 2 + INFRA_ATTEMPTS
    assert retry["evaluateOnExit"][0] == {"onStatusReason": "Host EC2*", "action": "RETRY"}
    assert stored["timeout"] == {"attemptDurationSeconds": 120}
    tags = stored["tags"]
    assert tags["batchbook:run"] == job.id and tags["batchbook:function"].endswith("double")
    assert tags["batchbook:user"]
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket="lab-bucket")["Contents"]]
    assert f"batchbook/runs/{job.id}/payload.bin" in keys  # the payload is in S3
    command = " ".join(stored["container"]["command"])
    assert "Ref::run" in command or job.id in command
    assert len(command) < 1000  # ids only: no payload in the request


def test_secrets_ride_on_a_revision_of_the_runner_definition(aws_env: dict[str, str]) -> None:
    """Batch takes secrets only from a job definition: the map submits to a revision of the
    runner's that has them (made once, found again), by name and ARN only; a map without
    secrets stays on the runner's plain revision, so no other job gets them."""
    assert batchbook("aws", "setup", "--region", REGION, "--bucket", "lab-bucket").returncode == 0
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
    with batch.use("aws"), pytest.raises(ClientError, match="has no executionRoleArn"):
        batch.map(double, range(2), secrets={"DB_PASSWORD": arn})  # Batch could not read it
    batch_client = client("batch")
    [first] = batch_client.describe_job_definitions(jobDefinitionName="batchbook-runner")[
        "jobDefinitions"
    ]
    role = "arn:aws:iam::123456789012:role/batchbook-execution"
    batch_client.register_job_definition(  # the runner, as a user gives it an execution role
        jobDefinitionName="batchbook-runner",
        type="container",
        parameters=first["parameters"],
        containerProperties={**first["containerProperties"], "executionRoleArn": role},
    )
    with batch.use("aws"):
        job = batch.map(double, range(2), secrets={"DB_PASSWORD": arn})
        again = batch.map(double, range(3), secrets={"DB_PASSWORD": arn})
        plain = batch.map(double, range(2))
    jobs = {j["jobId"]: j for j in batch_client.describe_jobs(
        jobs=[job.job_id, again.job_id, plain.job_id])["jobs"]}  # fmt: skip
    assert jobs[job.job_id]["jobDefinition"].endswith(":job-definition/batchbook-runner:3")
    assert jobs[again.job_id]["jobDefinition"] == jobs[job.job_id]["jobDefinition"]  # found again
    assert jobs[plain.job_id]["jobDefinition"].endswith(":job-definition/batchbook-runner:2")
    revisions = batch_client.describe_job_definitions(jobDefinitionName="batchbook-runner")
    [with_secrets] = [d for d in revisions["jobDefinitions"] if d["revision"] == 3]
    container = with_secrets["containerProperties"]
    assert container["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": arn}]
    assert (
        container["executionRoleArn"] == role and with_secrets["parameters"] == first["parameters"]
    )
    assert container["command"] == first["containerProperties"]["command"]
