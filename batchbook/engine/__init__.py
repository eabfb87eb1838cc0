"""The pure AWS Batch state machine: no I/O, no threads, no clock reads."""

from batchbook.engine.actions import Action, StartAttempt, StopAttempt, WriteNotice
from batchbook.engine.changes import Changes, Clock
from batchbook.engine.engine import Engine, EngineConfig
from batchbook.engine.registry import Host

__all__ = [
    "Action",
    "Changes",
    "Clock",
    "Engine",
    "EngineConfig",
    "Host",
    "StartAttempt",
    "StopAttempt",
    "WriteNotice",
]
