"""``~/.batchbook/config.toml``: what ``batchbook aws setup`` made, by profile, for
``batch.use("aws")``. Environment variables override a profile's values one by one:

- ``BATCHBOOK_PROFILE``: which profile (default ``default``);
- ``BATCHBOOK_AWS_REGION``, ``BATCHBOOK_AWS_QUEUE``, ``BATCHBOOK_AWS_STORE``
  (``s3://bucket/prefix``), ``BATCHBOOK_AWS_JOB_DEFINITION``;
- ``BATCHBOOK_AWS_PROFILE``: the AWS credentials profile to use (else boto3's own choice).

Read with the standard library's ``tomllib``, written with ``tomli_w``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import tomli_w

from batchbook.errors import ClientError
from batchbook.home import home

ENVIRONMENT = {
    "region": "BATCHBOOK_AWS_REGION",
    "queue": "BATCHBOOK_AWS_QUEUE",
    "store": "BATCHBOOK_AWS_STORE",
    "job_definition": "BATCHBOOK_AWS_JOB_DEFINITION",
    "aws_profile": "BATCHBOOK_AWS_PROFILE",
}
PROFILE_ENV = "BATCHBOOK_PROFILE"


@dataclass(frozen=True)
class AwsProfile:
    """Where maps go on AWS: the region, the job queue, the runner's job definition, the
    store (``s3://bucket/prefix``), the setup's name (its resources' tag) and, if any, the
    AWS credentials profile."""

    region: str
    queue: str
    job_definition: str
    store: str
    setup: str = ""
    aws_profile: str = ""

    @property
    def bucket(self) -> str:
        return self.store.removeprefix("s3://").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        rest = self.store.removeprefix("s3://").split("/", 1)
        return rest[1].strip("/") if len(rest) > 1 else ""


def config_path() -> Path:
    return home() / "config.toml"


def save_profile(profile: AwsProfile, name: str = "default", path: Path | None = None) -> Path:
    """Write ``profile`` as ``[profiles.<name>]``, keeping the file's other profiles."""
    path = path or config_path()
    data = _read(path)
    data.setdefault("profiles", {})[name] = {k: v for k, v in asdict(profile).items() if v}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(data))
    return path


def load_profile(name: str | None = None, path: Path | None = None) -> AwsProfile:
    """The profile ``name`` (else $BATCHBOOK_PROFILE, else ``default``), with the
    environment's overrides; ClientError saying what to run when there is none."""
    path = path or config_path()
    name = name or os.environ.get(PROFILE_ENV) or "default"
    stored = _read(path).get("profiles", {}).get(name, {})
    values = {f.name: stored.get(f.name, "") for f in fields(AwsProfile)}
    for key, variable in ENVIRONMENT.items():
        if os.environ.get(variable):
            values[key] = os.environ[variable]
    missing = [k for k in ("region", "queue", "job_definition", "store") if not values[k]]
    if missing:
        raise ClientError(
            f"profile: {name!r} in {path} has no {', '.join(missing)}; run `batchbook aws "
            f"setup --region R --bucket B` (or set {', '.join(ENVIRONMENT[k].upper() for k in missing)})"
        )
    return AwsProfile(**values)


def _read(path: Path) -> dict:  # type: ignore[type-arg]
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ClientError(f"{path}: not a TOML file ({e}); fix or remove it") from None
