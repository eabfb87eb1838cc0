"""Spot interruptions, rehearsed: a SPOT or FARGATE_SPOT compute environment tagged
``batchbook:spotInterruptionsPerHour`` reclaims the instances its attempts run on, as spot
does, at times drawn from its seed (``batchbook:spotSeed``), so the same map meets the same
interruptions every run.

For each attempt the interruption comes after an exponentially distributed time (the
tag's rate); then, as on EC2: the two-minute instance-action notice
(``batchbook:spotNoticeSeconds``, default 120) as JSON in the file named by the job's
``BATCHBOOK_SPOT_NOTICE_FILE``; SIGTERM 30 s before the notice ends (ECS's stop timeout),
SIGKILL at its end; the attempt fails with "Host EC2 (instance i-...) terminated.", which
Batch's retry rules see as a lost host. Pure: the engine keeps the timers, the runtime
writes the file and sends the signals.
"""

from __future__ import annotations

import datetime
import json
import random
from dataclasses import dataclass
from typing import Any

from batchbook.engine.jobs import JobState

RATE_TAG = "batchbook:spotInterruptionsPerHour"
SEED_TAG = "batchbook:spotSeed"
NOTICE_TAG = "batchbook:spotNoticeSeconds"
NOTICE_ENV = "BATCHBOOK_SPOT_NOTICE_FILE"
NOTICE_MS = 120_000  # EC2's two-minute warning
STOP_TIMEOUT_MS = 30_000  # ECS: SIGTERM, and SIGKILL this long after
TERMINATED = "Host EC2 (instance {instance}) terminated."


@dataclass(frozen=True)
class Interruption:
    """When one attempt's instance is reclaimed, counted from the attempt's start."""

    after_ms: int  # the notice comes this long after the attempt started
    notice_ms: int
    instance_id: str

    @property
    def term_after_ms(self) -> int:
        """SIGTERM: 30 s before the notice ends (at once with a shorter notice)."""
        return self.after_ms + max(0, self.notice_ms - STOP_TIMEOUT_MS)

    @property
    def grace_ms(self) -> int:
        """From SIGTERM to SIGKILL: the rest of the notice."""
        return min(STOP_TIMEOUT_MS, self.notice_ms)

    @property
    def reason(self) -> str:
        return TERMINATED.format(instance=self.instance_id)

    def notice(self, started_at: int) -> str:
        """The instance-action document, as EC2's metadata service gives it."""
        end = datetime.datetime.fromtimestamp(
            (started_at + self.after_ms + self.notice_ms) / 1000, datetime.UTC
        )
        return json.dumps({"action": "terminate", "time": end.strftime("%Y-%m-%dT%H:%M:%SZ")})


def notice_path(folder: str, task_id: str) -> str:
    """The notice file of attempt ``task_id`` (in its job's BATCHBOOK_SPOT_NOTICE_FILE)."""
    return f"{folder.rstrip('/')}/{task_id}-instance-action.json"


def interruption(ce: dict[str, Any], key: str) -> Interruption | None:
    """The interruption the attempt ``key`` (job name, index, node, attempt: the same in
    every run of the same map) meets in compute environment ``ce``, if it rehearses spot."""
    kind = (ce.get("computeResources") or {}).get("type", "")
    tags = ce.get("tags") or {}
    rate = float(tags.get(RATE_TAG, 0) or 0)
    if not kind.endswith("SPOT") or rate <= 0:
        return None
    rng = random.Random(f"{tags.get(SEED_TAG, '0')}/{key}")
    after = int(rng.expovariate(rate / 3_600_000))  # per millisecond
    notice = int(float(tags.get(NOTICE_TAG, NOTICE_MS / 1000)) * 1000)
    return Interruption(after, notice, f"i-{rng.getrandbits(68):017x}")


def for_attempt(ce: dict[str, Any] | None, job: JobState) -> Interruption | None:
    """The interruption ``job``'s attempt in flight meets in ``ce`` (None: none, or no spot)."""
    if ce is None or job.task is None:
        return None
    return interruption(ce, f"{job.spec.name}/{job.index}/{job.node}/{job.task.number}")


def check_tags(tags: dict[str, str]) -> None:
    """ClientError naming the tag, unless the rehearsal's tags are numbers it can use."""
    from batchbook.errors import ClientError

    for tag, high in ((RATE_TAG, 1e6), (NOTICE_TAG, 86_400.0)):
        if tag in tags:
            try:
                value = float(tags[tag])
            except ValueError:
                value = -1
            if not 0 <= value <= high:  # NaN and infinities too
                raise ClientError(
                    f"tags.{tag}: {tags[tag]!r:.40} is not a number from 0 to {high:g}"
                )
