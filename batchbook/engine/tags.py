"""Tags of Batch resources by ARN: compute environments, job queues, job definitions, jobs
(an array's children share their parent's)."""

from __future__ import annotations

import re
from collections.abc import Callable

from batchbook.engine.jobs import JobState
from batchbook.engine.registry import Registry, check_tags
from batchbook.errors import ClientError

_BATCH_ARN = re.compile(
    r"^arn:aws[a-z-]*:batch:[a-z0-9-]*:\d{12}:(compute-environment|job-queue|job-definition|job)/(.+)$"
)


def resource_tags(
    arn: str,
    change: Callable[[dict[str, str]], dict[str, str]] | None,
    registry: Registry,
    jobs: dict[str, JobState],
) -> tuple[dict[str, str], JobState | None]:
    """The tags of the resource ``arn`` names, after ``change`` (None: just read them), and
    the job that holds them, if a job does."""
    match = _BATCH_ARN.match(arn)
    if match is None:
        raise ClientError(
            f"resourceArn: {arn!r:.200} is not a Batch ARN (arn:aws:batch:<region>:<account>:"
            "<compute-environment|job-queue|job-definition|job>/<name>)"
        )
    kind, name = match.group(1), match.group(2)
    if kind != "job":
        return registry.retag(kind, name, change), None
    job = jobs.get(name)
    if job is None:
        raise ClientError(f"resourceArn: job {name!r} does not exist")
    job = job.parent or job  # an array's children share the parent's tags
    if change is not None:
        tags = change(dict(job.tags))
        check_tags(tags, "tags")
        job.tags = tags
    return dict(job.tags), job
