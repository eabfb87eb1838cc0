"""A job definition's ``secrets`` on this machine: each ``valueFrom`` (a Secrets Manager or
SSM Parameter Store ARN) is looked up, at launch, in the secrets file the service's
``BATCHBOOK_SECRETS_FILE`` names (JSON: ARN or secret name -> value), else in the
service's environment under the secret's name. The values go into the attempt's process
environment only: never into the state database, a log, DescribeJobs or the store."""

from __future__ import annotations

import json
import os
from typing import Any

SECRETS_FILE_ENV = "BATCHBOOK_SECRETS_FILE"
# AWS's words when a task cannot get its secrets
UNRESOLVED = (
    "ResourceInitializationError: unable to pull secrets: {name} ({arn}) is neither in the "
    "secrets file BATCHBOOK_SECRETS_FILE names nor in the environment the local service "
    "started in"
)


def resolve(secrets: tuple[tuple[str, str], ...]) -> tuple[dict[str, str], str | None]:
    """(name -> value, None), or ({}, the reason the attempt cannot start)."""
    known = _file()
    values = {}
    for name, arn in secrets:
        value = known.get(arn, known.get(name, os.environ.get(name)))
        if value is None:
            return {}, UNRESOLVED.format(name=name, arn=arn)
        values[name] = str(value)
    return values, None


def _file() -> dict[str, Any]:
    path = os.environ.get(SECRETS_FILE_ENV)
    if not path:
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
