"""Each input's output files, on the folder store and on S3 (moto's server): what a mapped
function leaves in batch.output_dir() is kept when the input ends, even when it fails, and
job.files(i) lists and fetches it; batch.open reads an s3:// input as a stream."""

from __future__ import annotations

from pathlib import Path

import pytest

import batchbook as batch
from batchbook.errors import ClientError
from batchbook.functions.backend import Backend
from tests.conftest import BUCKET


def plots(x: int) -> int:
    folder = batch.output_dir()
    (folder / "summary.txt").write_text(f"input {x}\n")
    (folder / "figures").mkdir()
    (folder / "figures" / "curve.bin").write_bytes(bytes(range(256)) * (x + 1))
    if x == 2:
        raise ValueError("failed after writing its files")
    return x


def test_output_files_are_kept_per_input_and_fetched(backend: Backend, tmp_path: Path) -> None:
    job = batch.map(plots, range(3), chunksize=3).wait(timeout=120, progress=False)
    files = job.files(1)
    assert files.names == ["figures/curve.bin", "summary.txt"]
    assert files.read("summary.txt") == b"input 1\n"
    assert files.sizes["figures/curve.bin"] == 512
    assert repr(files) == "<files of input 1: figures/curve.bin (512 B), summary.txt (8 B)>"
    saved = files.save(tmp_path / "out")
    assert (tmp_path / "out" / "figures" / "curve.bin").read_bytes() == bytes(range(256)) * 2
    assert len(saved) == 2
    assert job.files(2).read("summary.txt") == b"input 2\n"  # a failed input keeps its files
    assert job.files(0).read("summary.txt") == b"input 0\n"  # one folder each, in one chunk
    with pytest.raises(KeyError, match=r"input 1 kept no file 'nope\.txt'"):
        files.read("nope.txt")
    with pytest.raises(ClientError, match=r"batch\.output_dir\(\): only inside a function"):
        batch.output_dir()


def reads(uri: str) -> int:
    with batch.open(uri) as stream:
        return len(stream.read())


def test_an_input_is_opened_on_the_worker_as_a_stream(backend: Backend, tmp_path: Path) -> None:
    local = tmp_path / "data.bin"
    local.write_bytes(b"y" * 70)
    assert batch.map(reads, [str(local), f"file://{local}"]).results() == [70, 70]
    if not backend.store.url.startswith("s3://"):
        return  # this service's workers have no credentials for moto's S3 (the S3 one has)
    import boto3

    boto3.client("s3").put_object(Bucket=BUCKET, Key="inputs/data.bin", Body=b"x" * 5000)
    job = batch.map(reads, [f"s3://{BUCKET}/inputs/data.bin", f"s3://{BUCKET}/inputs/none"])
    results = job.results(return_exceptions=True)
    assert results[0] == 5000
    assert isinstance(results[1], Exception) and "no such object" in str(results[1])


def keeps_per_attempt(x: int) -> int:
    import os

    attempt = os.environ["AWS_BATCH_JOB_ATTEMPT"]
    (batch.output_dir() / f"attempt{attempt}.txt").write_text(attempt)
    if attempt == "1":
        raise RuntimeError("the first attempt fails after writing")
    return x


def test_a_retried_input_shows_the_files_of_its_latest_attempt(backend: Backend) -> None:
    job = batch.map(keeps_per_attempt, [5], retries=1).wait(timeout=120, progress=False)
    assert job.results() == [5]
    assert job.files(0).names == ["attempt2.txt"]
