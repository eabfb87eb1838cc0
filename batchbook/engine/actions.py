"""What the engine asks its driver (the runtime) to do. Plain data, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StartAttempt:
    task_id: str
    job_id: str
    attempt: int
    argv: tuple[str, ...]
    env: dict[str, str]  # on top of the runtime's own environment
    memory_mib: int
    vcpu_milli: int
    log_stream: str
    # (name, valueFrom) of the definition's secrets: the driver resolves them at launch,
    # into the process's environment only (never into anything it keeps)
    secrets: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StopAttempt:
    task_id: str
    pid: int
    reason: str
    grace_ms: int | None = None  # SIGTERM, then SIGKILL this long after (None: the driver's)


@dataclass(frozen=True)
class WriteNotice:
    """Write ``text`` to ``path`` for the attempt to read (a spot instance-action notice)."""

    task_id: str
    path: str
    text: str


Action = StartAttempt | StopAttempt | WriteNotice
