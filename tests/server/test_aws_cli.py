"""The real ``aws`` command and the ``batchbook`` command against a running service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from batchbook.server.discovery import Service, find_service
from tests.server.conftest import wait_jobs


def aws(env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        ["aws", *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else {}


def test_aws_cli_drives_the_engine_and_reads_its_logs(
    service: Service, batch: Any, tmp_path: Path
) -> None:
    # The profile `batchbook status` prints, used as the user would: in ~/.aws/config.
    config = tmp_path / "aws-config"
    config.write_text(service.profile() + "\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_PROFILE": "batchbook-local",
    }
    resources = json.dumps(
        {
            "type": "EC2",
            "minvCpus": 0,
            "desiredvCpus": 0,
            "maxvCpus": 2,
            "subnets": ["subnet-1"],
            "instanceRole": "ecsInstanceRole",
            "instanceTypes": ["optimal"],
        }
    )
    aws(
        env,
        "batch",
        "create-compute-environment",
        "--compute-environment-name",
        "cli-ce",
        "--type",
        "MANAGED",
        "--compute-resources",
        resources,
    )
    aws(
        env,
        "batch",
        "create-job-queue",
        "--job-queue-name",
        "cli",
        "--priority",
        "1",
        "--compute-environment-order",
        "order=1,computeEnvironment=cli-ce",
    )
    aws(
        env,
        "batch",
        "register-job-definition",
        "--job-definition-name",
        "cli-py",
        "--type",
        "container",
        "--container-properties",
        json.dumps(
            {
                "image": "python:3.11",
                "command": ["python", "-c", "print('from the cli')"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "256"},
                ],
            }
        ),
    )
    job = aws(
        env,
        "batch",
        "submit-job",
        "--job-name",
        "cli-job",
        "--job-queue",
        "cli",
        "--job-definition",
        "cli-py",
    )
    (detail,) = wait_jobs(batch, [job["jobId"]])
    assert detail["status"] == "SUCCEEDED"
    described = aws(env, "batch", "describe-jobs", "--jobs", job["jobId"])["jobs"][0]
    assert described["status"] == "SUCCEEDED" and described["jobName"] == "cli-job"
    events = aws(
        env,
        "logs",
        "get-log-events",
        "--log-group-name",
        "/aws/batch/job",
        "--log-stream-name",
        described["container"]["logStreamName"],
        "--start-from-head",
    )
    assert [e["message"] for e in events["events"]] == ["from the cli"]
    # Errors reach the CLI as AWS's: exit code 254/255 with the ClientException message.
    bad = subprocess.run(
        [
            "aws",
            "batch",
            "submit-job",
            "--job-name",
            "x",
            "--job-queue",
            "nope",
            "--job-definition",
            "cli-py",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0
    assert "ClientException" in bad.stderr and "job queue 'nope' does not exist" in bad.stderr
    # EventBridge Scheduler through the same profile: a schedule whose target submits cli-py
    submit = {"JobName": "timed", "JobQueue": "cli", "JobDefinition": "cli-py"}
    target = {
        "Arn": "arn:aws:scheduler:::aws-sdk:batch:submitJob",
        "RoleArn": "arn:aws:iam::123456789012:role/any",
        "Input": json.dumps(submit),
    }
    made = aws(
        env, "scheduler", "create-schedule", "--name", "cli-daily",
        "--schedule-expression", "cron(15 6 * * ? *)", "--flexible-time-window", "Mode=OFF",
        "--target", json.dumps(target),
    )  # fmt: skip
    assert made["ScheduleArn"].endswith(":schedule/default/cli-daily")
    listed = aws(env, "scheduler", "list-schedules")["Schedules"]
    assert [(x["Name"], x["State"]) for x in listed] == [("cli-daily", "ENABLED")]
    got = aws(env, "scheduler", "get-schedule", "--name", "cli-daily")
    assert got["ScheduleExpression"] == "cron(15 6 * * ? *)"
    retry = {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}  # AWS's defaults
    assert got["Target"] == {**target, "RetryPolicy": retry}
    aws(env, "scheduler", "delete-schedule", "--name", "cli-daily")
    missing = subprocess.run(
        ["aws", "scheduler", "get-schedule", "--name", "cli-daily"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr


def test_batchbook_status_and_stop(service: Service) -> None:
    cmd = [sys.executable, "-m", "batchbook"]
    where = ["--state-dir", str(service.state_dir)]
    status = subprocess.run([*cmd, "status", *where], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0
    assert service.url in status.stdout and f"pid {service.pid}" in status.stdout
    assert service.credentials.access_key in status.stdout
    stop = subprocess.run([*cmd, "stop", *where], capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert find_service(service.state_dir) is None
    again = subprocess.run([*cmd, "status", *where], capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "no batchbook service" in again.stdout
