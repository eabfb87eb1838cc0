"""Fixtures every layer's tests may use: moto's server as S3, on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

# moto's real HTTP server in a process of its own (the program aws.ipynb's rehearsal of AWS
# runs too); it prints its port, and stops when its stdin closes (the session ended, or died)
from notebooks.rehearsal import MOTO

BUCKET = "batchbook-tests"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's server as S3, with bucket BUCKET; the environment points boto3 at it, so local
    services started from now on (and their workers) reach it too. Nothing reaches AWS."""
    proc = subprocess.Popen(
        [sys.executable, "-c", MOTO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int(proc.stdout.readline())
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ENVIRONMENT}
    os.environ.update({**ENVIRONMENT, "AWS_ENDPOINT_URL_S3": endpoint})
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.stdin.close()
        proc.wait(timeout=30)


ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ENDPOINT_URL_S3": "",
}
