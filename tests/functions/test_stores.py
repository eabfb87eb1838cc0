"""The object store contract, one test file over both implementations: a folder, and S3
(moto's server); and the layout a run leaves in it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

import batchbook as batch
from batchbook.errors import ClientError
from batchbook.functions.backend import Backend
from batchbook.functions.objects import FolderStore, ObjectStore, S3Store, open_store
from tests.conftest import BUCKET


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "folder":
        yield FolderStore(tmp_path / "store")
    else:
        request.getfixturevalue("s3_endpoint")
        yield open_store(f"s3://{BUCKET}/contract-{uuid.uuid4().hex[:8]}")


def test_put_get_range_list_delete(store: ObjectStore) -> None:
    store.put("runs/a/run.json", b"{}")
    store.put("runs/a/payload.bin", [b"abc", memoryview(b"def"), bytearray(b"gh")])
    store.put("runs/ab/run.json", b"[]")
    store.put("ledger/a.json", b"1")
    assert bytes(store.get("runs/a/payload.bin")) == b"abcdefgh"
    assert store.get_range("runs/a/payload.bin", 2, 5) == b"cde"
    assert store.get_range("runs/a/payload.bin", 5, 5) == b""
    assert store.list("runs/a/") == [("runs/a/payload.bin", 8), ("runs/a/run.json", 2)]
    assert [k for k, _ in store.list("runs/a")] == [  # a prefix, not a folder: ab too
        "runs/a/payload.bin",
        "runs/a/run.json",
        "runs/ab/run.json",
    ]
    assert store.list("runs/a/run.json") == [("runs/a/run.json", 2)]
    assert store.list("nothing/") == []
    store.put("runs/a/run.json", b'{"again": 1}')  # a put replaces the object whole
    assert bytes(store.get("runs/a/run.json")) == b'{"again": 1}'
    store.delete("runs/a/")
    assert [k for k, _ in store.list("runs/")] == ["runs/ab/run.json"]
    with pytest.raises(FileNotFoundError):
        store.get("runs/a/run.json")
    with pytest.raises(FileNotFoundError):
        store.get_range("runs/a/payload.bin", 0, 1)


def test_folders_are_the_next_segments_that_hold_more(store: ObjectStore) -> None:
    for key in ("r/results/0/01-000000.rec", "r/results/0/02-000000.rec", "r/results/12/01.rec"):
        store.put(key, b"x")
    store.put("r/results/loose.rec", b"y")  # an object, not a folder
    store.put("r/resultsX/3/01.rec", b"z")  # a longer prefix: not under r/results/
    assert store.folders("r/results/") == ["0", "12"]
    assert store.folders("r/") == ["results", "resultsX"]
    assert store.folders("nothing/") == []


def test_big_objects_come_back_whole(store: ObjectStore) -> None:
    big = bytes(range(256)) * (40 * 4096)  # 40 MiB: multipart on S3, a memory map from a folder
    store.put("runs/big/payload.bin", [big[:1000], big[1000:]])
    assert bytes(store.get("runs/big/payload.bin")) == big
    assert (
        store.get_range("runs/big/payload.bin", 20 << 20, (20 << 20) + 10) == big[20 << 20 :][:10]
    )
    assert store.list("runs/big/") == [("runs/big/payload.bin", len(big))]


def test_keys_that_leave_the_store_are_refused(store: ObjectStore) -> None:
    for key in ("", "../x", "runs//x", "runs/./x"):
        with pytest.raises(ClientError, match="not a valid key"):
            store.put(key, b"x")


def test_open_store_names_what_it_takes() -> None:
    with pytest.raises(ClientError, match=r"use file:///a/folder or s3://bucket/prefix"):
        open_store("gs://bucket/x")


def square(x: int) -> int:
    return x * x


def test_a_run_on_s3_leaves_the_layout_an_object_store_allows(backend: Backend) -> None:
    if not isinstance(backend.store, S3Store):
        pytest.skip("the S3 layout, listed with a plain S3 client")
    job = batch.map(square, range(10), chunksize=5, name="layout", wait=True)
    assert job.results() == [x * x for x in range(10)]
    prefix = backend.store.prefix
    keys = [
        o["Key"][len(prefix) + 1 :]
        for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    ]
    run = f"runs/{job.id}/"
    assert {k for k in keys if k.startswith(run)} == {
        f"{run}run.json",
        f"{run}payload.bin",
        f"{run}results/0/01-000000.rec",  # one object per flush of a chunk attempt
        f"{run}results/1/01-000000.rec",
    }
    assert f"ledger/{job.id}.json" in keys  # one ledger object per run
