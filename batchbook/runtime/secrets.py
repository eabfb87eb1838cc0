"""A job definition's ``secrets`` on this machine: each ``valueFrom`` (a Secrets Manager or
SSM Parameter Store ARN) is looked up, at launch, in the JSON file the service's
``BATCHBOOK_SECRETS_FILE`` names (ARN, or the variable's name, -> value), else in the
service's environment as ``BATCHBOOK_SECRET_<NAME>``. The values go into that attempt's
process environment only: never into the state database, a log, DescribeJobs or the
store; and no job gets the file's path or those variables (``hidden``), so one job cannot
read another's secrets."""

from __future__ import annotations

import json
import os

SECRETS_FILE_ENV = "BATCHBOOK_SECRETS_FILE"
SECRET_ENV_PREFIX = "BATCHBOOK_SECRET_"
# AWS's words when a task cannot get its secrets
UNRESOLVED = (
    "ResourceInitializationError: unable to pull secrets: {name} ({arn}) is neither in the "
    "secrets file BATCHBOOK_SECRETS_FILE names nor BATCHBOOK_SECRET_{name} in the "
    "environment the local service started in"
)


def hidden(variable: str) -> bool:
    """Whether a variable of the service's environment is kept from the jobs it runs."""
    return variable == SECRETS_FILE_ENV or variable.startswith(SECRET_ENV_PREFIX)


def resolve(secrets: tuple[tuple[str, str], ...]) -> tuple[dict[str, str], str | None]:
    """(name -> value, None), or ({}, the reason the attempt cannot start)."""
    path = os.environ.get(SECRETS_FILE_ENV)
    known: dict[str, object] = {}
    if path:
        try:
            with open(path) as f:
                loaded = json.load(f)
        except (OSError, ValueError) as e:
            return {}, (
                f"ResourceInitializationError: unable to pull secrets: the secrets file "
                f"{path} cannot be read ({type(e).__name__}: {e})"
            )
        known = loaded if isinstance(loaded, dict) else {}
    values = {}
    for name, arn in secrets:
        value = known.get(arn, known.get(name, os.environ.get(SECRET_ENV_PREFIX + name)))
        if value is None:
            return {}, UNRESOLVED.format(name=name, arn=arn)
        values[name] = str(value)
    return values, None
