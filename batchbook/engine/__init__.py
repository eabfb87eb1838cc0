"""The pure AWS Batch state machine: no I/O, no threads, no clock reads."""

from batchbook.engine.actions import Action, StartAttempt, StopAttempt
from batchbook.engine.engine import Changes, Clock, Engine, EngineConfig
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
]
