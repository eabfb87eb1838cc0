"""moto's server as all of AWS (Batch, IAM, EC2, S3, CloudWatch Logs, STS), with AWS's
managed policies loaded, reset before each test; the environment points boto3 (and the
`batchbook` command the tests run) at it, and BATCHBOOK_HOME at a folder of the test's."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MOTO

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-c", MOTO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdin is not None
    yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    proc.stdin.close()
    proc.wait(timeout=30)


@pytest.fixture
def aws_env(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    env = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "BATCHBOOK_HOME": str(tmp_path / "home"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def batchbook(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The `batchbook` command, as a user runs it (the environment is the test's)."""
    return subprocess.run(
        [sys.executable, "-m", "batchbook", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
    )


def client(name: str) -> Any:
    import boto3

    return boto3.client(name, region_name=REGION)
