"""Secrets on the local engine: a map's secrets= reach the worker's environment from the
service's secrets file or environment, and their values are in no byte the service keeps
(the state dir is read whole: its database, logs and store)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.errors import ClientError
from batchbook.server.discovery import stop_service
from tests.server.conftest import start

IN_FILE = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"
IN_ENV = "arn:aws:ssm:us-east-1:123456789012:parameter/api/token"
NOWHERE = "arn:aws:ssm:us-east-1:123456789012:parameter/missing"
# made when the test runs: the source of this module travels with the function, so a value
# written here would be in the payload for the wrong reason
VALUES = (f"from-the-file-{secrets.token_hex(8)}", f"from-the-environment-{secrets.token_hex(8)}")


def digests(_: int) -> tuple[str, str]:
    return tuple(  # type: ignore[return-value]
        hashlib.sha256(os.environ[name].encode()).hexdigest() for name in ("DB_PASSWORD", "TOKEN")
    )


def peeks(_: int) -> list[str | None]:
    names = ("BATCHBOOK_SECRETS_FILE", "BATCHBOOK_SECRET_TOKEN", "TOKEN")
    return [os.environ.get(name) for name in names]


def test_secrets_reach_the_worker_and_no_stored_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets_file = tmp_path / "secrets.json"  # named by the user, outside the state dir
    secrets_file.write_text(json.dumps({IN_FILE: VALUES[0]}))
    monkeypatch.setenv("BATCHBOOK_SECRETS_FILE", str(secrets_file))
    monkeypatch.setenv("BATCHBOOK_SECRET_TOKEN", VALUES[1])  # where the service starts
    state = tmp_path / "state"
    start(state)
    try:
        with batch.use(state_dir=state) as backend:
            job = batch.map(digests, [0], secrets={"DB_PASSWORD": IN_FILE, "TOKEN": IN_ENV})
            expected = tuple(hashlib.sha256(v.encode()).hexdigest() for v in VALUES)
            assert job.results() == [expected]
            [detail] = backend.describe([job.job_id])
            assert {"name": "TOKEN", "valueFrom": IN_ENV} in detail["container"]["secrets"]
            described = json.dumps(backend.describe([job.job_id]))
            # a job that asks for none gets none: not the file, not the variables
            others = batch.map(peeks, [0]).results()
            assert others == [[None, None, None]]
            missing = batch.map(digests, [0], secrets={"DB_PASSWORD": NOWHERE, "TOKEN": IN_ENV})
            error = missing.wait(timeout=60, progress=False).to_frame().loc[0, "error"]
            assert "ResourceInitializationError: unable to pull secrets: DB_PASSWORD" in error
        for value in VALUES:
            assert value not in described
            for path in state.rglob("*"):
                if path.is_file():
                    assert value.encode() not in path.read_bytes(), path
    finally:
        stop_service(state)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"1BAD": IN_ENV}, "secrets: '1BAD' is not an environment variable name"),
        ({"TOKEN": "hunter2"}, "secrets\\['TOKEN'\\]: 'hunter2' is not the ARN of a Secrets"),
        (["TOKEN"], "secrets: give a dict of environment variable name -> secret ARN"),
    ],
)
def test_bad_secrets_are_refused_by_name(given: object, message: str) -> None:
    with pytest.raises(ClientError, match=message):
        batch.map(digests, [0], secrets=given)  # type: ignore[arg-type]
