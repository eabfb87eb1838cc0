"""batchbook: run Python functions as AWS Batch array jobs from a notebook.

    import batchbook as batch
    job = batch.map(simulate, params, vcpus=1, memory="2 GiB", retries=2)
    df = job.to_frame()

The package root stays light on purpose: the local engine's fork server imports
it, so the public API is imported on first use (PEP 562), not here.
"""

from typing import Any

from batchbook import display, errors
from batchbook.version import __version__

display.register("MapJob", "batchbook.notebook.views:JobView")

_LAZY = {
    "Executor": "batchbook.functions.futures",
    "Job": "batchbook.functions.futures",
    "MapJob": "batchbook.functions.mapjob",
    "Schedule": "batchbook.functions.schedule",
    "attach": "batchbook.functions.api",
    "checkpoint": "batchbook.functions.checkpoints",
    "cleanup": "batchbook.functions.api",
    "dashboard": "batchbook.notebook.dashboard",
    "estimate": "batchbook.functions.estimating",
    "jobs": "batchbook.functions.api",
    "map": "batchbook.functions.api",
    "open": "batchbook.functions.outputs",
    "output_dir": "batchbook.functions.outputs",
    "restore": "batchbook.functions.checkpoints",
    "schedule": "batchbook.functions.schedule",
    "schedules": "batchbook.functions.schedule",
    "submit": "batchbook.functions.futures",
    "use": "batchbook.functions.backends",
    "view": "batchbook.notebook.views",
}

__all__ = [
    "Executor",
    "Job",
    "MapJob",
    "Schedule",
    "__version__",
    "attach",
    "checkpoint",
    "cleanup",
    "dashboard",
    "errors",
    "estimate",
    "jobs",
    "map",
    "open",
    "output_dir",
    "restore",
    "schedule",
    "schedules",
    "submit",
    "use",
    "view",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchbook' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext batchbook``: the ``%%batch`` cell magic and the ``%batch`` commands."""
    from batchbook.notebook.magic import load

    load(ipython)


def __dir__() -> list[str]:
    return sorted(__all__)
