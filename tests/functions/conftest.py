"""One real local service for the module; batch.map and friends go through it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import batchbook as batch
from batchbook.functions.backend import Backend
from batchbook.server.discovery import stop_service
from tests.conftest import BUCKET
from tests.server.conftest import start


@pytest.fixture(scope="module", params=["folder", "s3"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """The local service as the Batch endpoint, and each object store in turn: a folder in
    its state dir, and S3 (moto's server)."""
    store = None
    if request.param == "s3":
        request.getfixturevalue("s3_endpoint")  # before the service starts: its workers reach it
        store = f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}"
    state = tmp_path_factory.mktemp("functions") / "state"
    start(state)  # the local service, with timeouts down to 1 s allowed
    yield batch.use(state_dir=state, store=store)
    stop_service(state)


@pytest.fixture(scope="module")
def folder_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """One local service of the module's own, with the folder store (for the modules whose
    tests need no second store)."""
    state = tmp_path_factory.mktemp("service") / "state"
    start(state)  # timeouts and state time limits down to 1 s allowed
    yield batch.use(state_dir=state)
    stop_service(state)


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    """A folder where test functions leave one file per call, to count what ran."""
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


def until(backend: Backend, holds: Callable[[], bool], seconds: float = 120) -> None:
    """Wait on the service's news (no sleeping) until ``holds()``."""
    deadline, version = time.monotonic() + seconds, 0
    while not holds():
        assert time.monotonic() < deadline, "timed out"
        version = backend.wait_for_change(version, 2)


def calls(folder: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in folder.iterdir():
        key = f.name.rsplit("-", 1)[0]
        out[key] = out.get(key, 0) + 1
    return out


def mark(folder: str, key: Any) -> None:
    import os
    import uuid

    with open(os.path.join(folder, f"{key}-{uuid.uuid4().hex}"), "w"):
        pass
