"""batch.schedule on AWS, with no AWS: EventBridge Scheduler and IAM at moto's server (which
stores schedules but never fires them), Batch and CloudWatch Logs at the local service, S3 at
moto. The schedule moto holds has the universal SubmitJob target, the setup's role and the
runner's job; its firing path is the target's SubmitJob, run against the local service: the
worker makes the firing a run of its own in S3, which batch.jobs() and Schedule.runs() find."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

import batchbook as batch
from batchbook.aws.resources import trust
from batchbook.errors import ClientError, ResourceNotFound
from batchbook.server.discovery import stop_service
from batchbook.validation import from_sdk_input
from batchbook.vocabulary import SUBMIT_JOB_TARGET
from tests.functions.conftest import until
from tests.functions.test_aws_parity import aws_on_local


def square(x: int) -> int:
    return x * x


def test_an_aws_schedule_targets_submit_job_and_its_firing_is_a_run(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    try:
        _, _, store = aws_on_local(state, monkeypatch)
        for service in ("SCHEDULER", "IAM"):
            monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", s3_endpoint)
        with batch.use("aws", region="us-east-1", queue="lab", store=store) as aws:
            with pytest.raises(ClientError, match="the IAM role lab-scheduler, with which"):
                batch.schedule(square, [1], cron="0 3 * * *", name="nightly")
            assert batch.schedules() == []
            assert aws.store.list("runs/schedule-") == []  # its template went with it
            role = boto3.client("iam").create_role(  # as `batchbook aws setup --name lab` does
                RoleName="lab-scheduler", AssumeRolePolicyDocument=trust("scheduler")
            )["Role"]["Arn"]
            s = batch.schedule(square, [1, 2, 3], cron="0 3 * * *", name="nightly", chunksize=2)
            assert repr(s).startswith("Schedule 'nightly': cron 0 3 * * *, next ")
            when = s.next_firing
            assert when is not None and (when.hour, when.minute) == (3, 0)

            held = boto3.client("scheduler").get_schedule(Name="nightly", GroupName="batchbook")
            assert held["ScheduleExpression"] == "cron(0 3 * * ? *)"
            assert held["ScheduleExpressionTimezone"] == "UTC"
            assert held["State"] == "ENABLED" and held["FlexibleTimeWindow"] == {"Mode": "OFF"}
            target = held["Target"]
            assert target["Arn"] == SUBMIT_JOB_TARGET and target["RoleArn"] == role
            submit = json.loads(target["Input"])
            assert submit["JobQueue"] == "lab" and submit["JobName"] == "nightly"
            assert submit["JobDefinition"].startswith("lab-runner")
            assert submit["Parameters"]["store"] == store  # the command carries ids only
            assert submit["Parameters"]["run"].startswith("schedule-nightly-")
            assert submit["ArrayProperties"] == {"Size": 2}
            assert submit["Tags"]["batchbook:schedule"] == "nightly"

            # what EventBridge Scheduler would do at 03:00: the target's SubmitJob
            aws.batch.submit_job(**from_sdk_input("SubmitJob", submit))
            until(aws, lambda: len(s.runs()) == 1)
            [run] = s.runs()
            frame = run.wait(timeout=120, progress=False).to_frame()
            assert frame["result"].tolist() == [1, 4, 9]
            listed = batch.jobs()
            assert listed.loc[listed["run_id"] == run.id, "name"].tolist() == ["nightly"]

            assert s.pause().paused
            held = boto3.client("scheduler").get_schedule(Name="nightly", GroupName="batchbook")
            assert held["State"] == "DISABLED" and held["Target"]["Input"] == target["Input"]
            s.resume().delete()
            with pytest.raises(ResourceNotFound):
                batch.schedules()["nightly"]
            assert batch.attach(run.id).to_frame()["result"].tolist() == [1, 4, 9]  # it stays
    finally:
        stop_service(state)
