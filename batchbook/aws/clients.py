"""boto3 clients for one region and credentials profile, with botocore's adaptive retries,
and the one wait AWS leaves to its clients: polling a describe call until a state holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from batchbook.errors import ClientError

WAIT_SECONDS = 600.0  # how long a compute environment or queue may take to change state


class Aws:
    """Clients of one region (endpoints as boto3 finds them: AWS_ENDPOINT_URL_* included)."""

    def __init__(self, region: str, profile: str | None = None, attempts: int = 10):
        import boto3
        from botocore.config import Config

        self.region = region
        self.profile = profile or ""  # the AWS credentials profile ("": boto3's choice)
        self.session = boto3.Session(profile_name=profile or None, region_name=region)
        self._config = Config(retries={"mode": "adaptive", "max_attempts": attempts})
        self._clients: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        """``aws.batch``, ``aws.iam``, ``aws.s3``, ``aws.ec2``, ``aws.logs``, ``aws.sts``."""
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=self._config)
        return self._clients[service]

    def account(self) -> str:
        return str(self.sts.get_caller_identity()["Account"])


def wait_until(
    check: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS, first: float = 0.5
) -> None:
    """Poll ``check`` (AWS has no events for these states) with a growing pause, at most
    ``timeout`` seconds; ClientError saying what did not happen."""
    deadline, pause = time.monotonic() + timeout, first
    while not check():
        if time.monotonic() > deadline:
            raise ClientError(f"{what}: not done after {timeout:.0f} s; see the AWS console")
        time.sleep(pause)
        pause = min(pause * 2, 10.0)


def is_missing(error: Exception) -> bool:
    """Whether a botocore error says the thing asked about does not exist."""
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in ("NoSuchEntity", "404", "NoSuchBucket", "NotFound", "ResourceNotFoundException")
