"""What the engine hands its driver to persist: the changes since the last call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchbook.engine.jobs import JobState

Clock = Callable[[], int]  # epoch milliseconds


@dataclass
class Changes:
    """What changed since the last call, for the runtime to persist in one transaction."""

    objects: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    jobs: list[JobState] = field(default_factory=list)
    events: list[tuple[int, str, str, str | None]] = field(default_factory=list)

    def then(self, later: Changes) -> Changes:
        """These changes followed by ``later`` ones (kept while they could not be saved)."""
        jobs = {job.id: job for job in [*self.jobs, *later.jobs]}  # a job's record is its state
        return Changes(
            self.objects + later.objects, list(jobs.values()), self.events + later.events
        )

    def __bool__(self) -> bool:
        return bool(self.objects or self.jobs or self.events)
