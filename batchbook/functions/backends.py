"""Picking the backend maps go to: ``batch.use()`` (also a context manager) and the current
one, the default local one on first use."""

from __future__ import annotations

import os
import threading
import warnings

from batchbook.errors import ClientError
from batchbook.functions.backend import Backend, current_or_none, make_current
from batchbook.functions.local_backend import LocalBackend

BACKENDS = ("local", "aws")


def use(
    backend: str | os.PathLike[str] = "local",
    *,
    state_dir: str | os.PathLike[str] | None = None,
    store: str | None = None,
    region: str | None = None,
    queue: str | None = None,
    profile: str | None = None,
) -> Backend:
    """Make ``backend`` the one batchbook submits to, and return it.

    ``"local"`` (the default): the local engine of ``state_dir`` (default
    ``~/.batchbook/local``), started if it is not running. ``store``: where payloads and
    results go (default: a folder in the state dir; ``"s3://bucket/prefix"`` for S3, with
    ``profile`` naming the AWS profile to reach it). ``queue``: the default job queue.
    ``"aws"``: AWS Batch itself, as ``batchbook aws setup`` made it (its config profile), or
    with ``region``, ``queue`` and ``store`` all given. It finds the service and builds its
    clients at once, so the first map pays no set-up. ``with batch.use(...):`` restores
    the previous backend afterwards.
    """
    if isinstance(backend, os.PathLike) or backend not in BACKENDS:  # the old use(state_dir)
        if state_dir is not None:
            raise ClientError(f"backend: {backend!r:.60} is not one of {', '.join(BACKENDS)}")
        warnings.warn(
            "batch.use(path) is deprecated; use batch.use(state_dir=path)",
            DeprecationWarning,
            stacklevel=2,
        )
        backend, state_dir = "local", backend
    if backend == "aws":
        from batchbook.functions.aws_backend import AwsBackend

        return make_current(
            AwsBackend.open(region=region, queue=queue, store=store, profile=profile)
        )
    chosen = LocalBackend.open(state_dir, store=store, region=region, queue=queue, profile=profile)
    return make_current(chosen)


def current() -> Backend:
    """The backend in use: the default local one on first call."""
    with _first_use:  # two threads' first maps start one service, and use one backend
        return current_or_none() or make_current(LocalBackend.open())


_first_use = threading.Lock()
