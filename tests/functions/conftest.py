"""One real local service for the module; batch.map and friends go through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import batchbook as batch
from batchbook.functions.backend import Backend
from batchbook.server.discovery import stop_service
from tests.server.conftest import start


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    state = tmp_path_factory.mktemp("functions") / "state"
    start(state)  # the local service, with timeouts down to 1 s allowed
    yield batch.use(state)
    stop_service(state)


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    """A folder where test functions leave one file per call, to count what ran."""
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


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
