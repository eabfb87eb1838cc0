"""The AWS code path end to end, with no AWS: the AWS backend with AWS_ENDPOINT_URL_BATCH and
AWS_ENDPOINT_URL_CLOUDWATCH_LOGS at the local service and S3 at moto's server runs a real map
(its workers read and write moto's S3) through the job definition `batchbook aws setup`
registers; its frame equals the all-local run's, failures, tracebacks and attempts included."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.aws.resources import Names, SetupOptions, runner_definition
from batchbook.functions.aws_backend import POLL_ENV
from batchbook.functions.backend import Backend, create_queue
from batchbook.server.discovery import Service, stop_service
from tests.conftest import BUCKET
from tests.functions.conftest import until
from tests.server.conftest import start

COLUMNS = ["input", "result", "status", "error", "traceback", "attempts"]


def square_but_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not welcome")
    print("squaring", x)
    return x * x


def aws_on_local(
    state: Path, monkeypatch: pytest.MonkeyPatch, *serve_args: str
) -> tuple[Service, Backend, str]:
    """A local service as AWS Batch and CloudWatch Logs (with what `batchbook aws setup
    --name lab` would make on it), moto's server as S3; the local backend on it, and the
    store for the AWS backend. The environment then points boto3 there."""
    # the workers' `python` is this one (the job definition's command runs `python`)
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    service = start(state, *serve_args)
    local = batch.use(state_dir=state)
    create_queue(local.batch, "lab", 2, ce="batchbook")
    opts = SetupOptions(region="us-east-1", bucket=BUCKET, prefix=uuid.uuid4().hex[:8], name="lab")
    names = Names.of(opts)
    job_role = {names.job_role: "arn:aws:iam::123456789012:role/lab-job"}
    local.batch.register_job_definition(**runner_definition(opts, names, job_role))
    for name, value in {
        "AWS_ENDPOINT_URL_BATCH": service.url,
        "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": service.url,
        "AWS_ACCESS_KEY_ID": service.credentials.access_key,  # moto takes any key
        "AWS_SECRET_ACCESS_KEY": service.credentials.secret_key,
        POLL_ENV: "0.2",
    }.items():
        monkeypatch.setenv(name, value)
    return service, local, opts.store


def test_the_aws_backend_gives_the_local_frame(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    try:
        _, local, store = aws_on_local(state, monkeypatch)
        with local:  # the all-local run
            expected = batch.map(square_but_three, range(6), chunksize=2, retries=1)
            expected_frame = expected.wait(progress=False).to_frame()[COLUMNS]
        with batch.use("aws", region="us-east-1", queue="lab", store=store) as aws:
            assert repr(aws).startswith("<batchbook AWS backend us-east-1, queue lab, store s3://")
            job = batch.map(square_but_three, range(6), chunksize=2, retries=1)
            frame = job.wait(timeout=120, progress=False).to_frame()[COLUMNS]
            [submitted] = aws.describe([job.job_id])
            assert submitted["jobDefinition"].endswith(":job-definition/lab-runner:1")
            assert submitted["parameters"]["run"] == job.id  # the command carries ids only
            assert "squaring 4" in job.logs(4)
        assert frame.equals(expected_frame), f"{frame}\n!=\n{expected_frame}"
        assert frame.loc[3, "status"] == "FAILED" and frame.loc[3, "attempts"] == 2
        assert "three is not welcome" in frame.loc[3, "traceback"]
    finally:
        stop_service(state)


def test_throttling_is_survived(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch's request limits, as the local service's --throttle imposes them: botocore's
    adaptive retries (and their client-side rate limiter) carry the map through."""
    state = tmp_path / "state"
    try:
        _, _, store = aws_on_local(state, monkeypatch, "--throttle", "4")
        throttled: list[int] = []
        with batch.use("aws", region="us-east-1", queue="lab", store=store) as aws:
            aws.batch.meta.events.register(  # each answer, the retried ones too
                "needs-retry.batch.*",
                lambda response, **_: throttled.append(response[0].status_code if response else 0),
            )
            job = batch.map(square_but_three, range(12), chunksize=1)
            frame = job.wait(timeout=300, progress=False).to_frame()
        assert (frame["status"] == "SUCCEEDED").sum() == 11
        assert 429 in throttled  # it was throttled, and went on
    finally:
        stop_service(state)


def test_cancel_acts_on_aws_as_locally(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    state = tmp_path / "state"
    try:
        _, _, store = aws_on_local(state, monkeypatch)
        with batch.use("aws", region="us-east-1", queue="lab", store=store):
            job = batch.map(time.sleep, [60] * 4, chunksize=1)
            job.cancel(indices=[1])
            frame = job.wait(timeout=5, progress=False).to_frame()
            assert frame.loc[1, "status"] == "FAILED"  # that one at once, the others go on
            job.cancel()
            frame = job.wait(timeout=120, progress=False).to_frame()
        assert frame["status"].tolist() == ["FAILED"] * 4
        assert set(frame["error"]) <= {"Cancelled by MapJob.cancel()"}
    finally:
        stop_service(state)


NEW_KERNEL = """
import sys
import batchbook as batch

batch.use("aws", region="us-east-1", queue="lab", store=sys.argv[1])
runs = batch.jobs()
print(runs.loc[runs["run_id"] == sys.argv[2], "status"].item())
print(batch.attach(sys.argv[2]).results(return_exceptions=True)[:3])
"""


def test_a_new_kernel_finds_the_aws_runs_from_s3_and_the_jobs_tags(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jobs() and attach() in a new process (a restarted kernel) find a run from its ledger
    object in S3; a ledger entry left pending (its client killed between SubmitJob and
    writing the job id) is settled from the job's batchbook:run tag."""
    import json
    import subprocess

    from batchbook.functions.ledger import ledger_key

    state = tmp_path / "state"
    try:
        _, _, store = aws_on_local(state, monkeypatch)
        with batch.use("aws", region="us-east-1", queue="lab", store=store) as aws:
            job = batch.map(square_but_three, range(4), chunksize=1).wait(120, progress=False)
            entry = json.loads(bytes(aws.store.get(ledger_key(job.id))))
            aws.store.put(ledger_key(job.id), json.dumps({**entry, "jobId": None}).encode())
        found = subprocess.run(
            [sys.executable, "-c", NEW_KERNEL, store, job.id],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert found.returncode == 0, found.stderr
        status, results = found.stdout.splitlines()
        assert status == "FAILED"  # one input failed: the array job did
        assert results.startswith("[0, 1, 4]")
        with batch.use("aws", region="us-east-1", queue="lab", store=store) as aws:
            settled = json.loads(bytes(aws.store.get(ledger_key(job.id))))
        assert settled["jobId"] == job.job_id  # written back once found by its tag
    finally:
        stop_service(state)


def test_diagnosis_reads_the_same_apis_on_aws(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batchbook.functions.diagnosis import REQUIREMENT

    state = tmp_path / "state"
    try:
        _, _, store = aws_on_local(state, monkeypatch)
        with batch.use("aws", region="us-east-1", queue="lab", store=store) as aws:
            job = batch.map(abs, [-1, -2], vcpus=64)
            until(aws, lambda: job.diagnose().category is not None)  # Batch has said why
            why = job.diagnose()
            assert why.category == REQUIREMENT
            assert why.summary.startswith("its children: runnable 2; the first runnable one, ")
            assert "it asks for 64 vCPU, 2,048 MiB, more than any compute" in why.summary
            assert "batchbook gives at most 2 vCPU" in why.evidence[0]
            job.cancel()
    finally:
        stop_service(state)
