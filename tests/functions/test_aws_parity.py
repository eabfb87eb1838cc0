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
from batchbook.functions.backend import create_queue
from batchbook.server.discovery import stop_service
from tests.conftest import BUCKET
from tests.server.conftest import start

COLUMNS = ["input", "result", "status", "error", "traceback", "attempts"]


def square_but_three(x: int) -> int:
    if x == 3:
        raise ValueError("three is not welcome")
    print("squaring", x)
    return x * x


def test_the_aws_backend_gives_the_local_frame(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the workers' `python` is this one (the job definition's command runs `python`)
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    state = tmp_path / "state"
    service = start(state)
    try:
        with batch.use(state_dir=state) as local:
            expected = batch.map(square_but_three, range(6), chunksize=2, retries=1)
            expected_frame = expected.wait(progress=False).to_frame()[COLUMNS]
            # What `batchbook aws setup --name lab` would make, on the local service
            create_queue(local.batch, "lab", 2, ce="batchbook")
            opts = SetupOptions(
                region="us-east-1", bucket=BUCKET, prefix=uuid.uuid4().hex[:8], name="lab"
            )
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
        with batch.use("aws", region="us-east-1", queue="lab", store=opts.store) as aws:
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
