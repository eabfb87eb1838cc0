"""One batch.use(): every form, the context manager, the deprecated path form."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.errors import ClientError
from batchbook.functions import backends
from batchbook.functions.backend import Backend
from batchbook.functions.objects import FolderStore, S3Store
from tests.conftest import BUCKET


def square(x: int) -> int:
    return x * x


def test_use_builds_everything_at_once_and_the_with_block_restores(
    backend: Backend, tmp_path: Path
) -> None:
    before = backends.current()
    other_dir = tmp_path / "other"
    with batch.use(state_dir=other_dir, queue="batchbook") as other:
        assert backends.current() is other and other is not before
        assert isinstance(other.store, FolderStore) and other.store.root == other_dir / "store"
        assert "batchbook" in other._ready  # the default queue and job definition are made
        assert batch.map(square, [3]).results() == [9]
        assert batch.jobs(other)["inputs"].tolist() == [1]
    assert backends.current() is before
    from batchbook.server.discovery import stop_service

    stop_service(other_dir)


def test_the_path_form_still_works_with_a_deprecation_warning(
    backend: Backend, tmp_path: Path
) -> None:
    before = backends.current()
    with pytest.warns(DeprecationWarning, match=r"use batch.use\(state_dir=path\)"):
        old = batch.use(tmp_path / "old")
    try:
        assert old.service.state_dir == (tmp_path / "old").resolve()
    finally:
        old.__exit__(None, None, None)
        from batchbook.server.discovery import stop_service

        stop_service(tmp_path / "old")
    assert backends.current() is before


def test_aws_needs_its_setup_and_unknown_names_are_refused(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHBOOK_HOME", str(tmp_path / "fresh"))  # no config file there
    with pytest.raises(ClientError, match=r"profile: 'default' .* run `batchbook aws setup"):
        batch.use("aws")
    with pytest.raises(ClientError, match="backend: 'cloud' is not one of local, aws"):
        batch.use("cloud", state_dir=backend.service.state_dir)
    with pytest.raises(ClientError, match="queue: job queue 'nope' does not exist"):
        batch.use(state_dir=backend.service.state_dir, queue="nope")
    with pytest.raises(ClientError, match=r"store: 'ftp://x' is not supported"):
        batch.use(state_dir=backend.service.state_dir, store="ftp://x")


def test_a_bucket_is_named_by_store_and_the_region_signs_the_arns(
    backend: Backend, s3_endpoint: str
) -> None:
    if not isinstance(backend.store, S3Store):
        pytest.skip("needs a service started with moto's credentials in its environment")
    store = f"s3://{BUCKET}/use-{uuid.uuid4().hex[:8]}"
    with batch.use(state_dir=backend.service.state_dir, store=store, region="eu-west-1") as on_s3:
        assert isinstance(on_s3.store, S3Store) and on_s3.store.url == store
        assert on_s3.store.worker_environment() == {"AWS_ENDPOINT_URL_S3": s3_endpoint}
        job = batch.map(square, [1, 2], chunksize=2)  # one job, not an array
        assert job.results() == [1, 4]
        (detail,) = on_s3.describe([job.job_id])
        assert detail["jobArn"].startswith("arn:aws:batch:eu-west-1:")
        env = {e["name"]: e["value"] for e in detail["container"]["environment"]}
        assert env["AWS_ENDPOINT_URL_S3"] == s3_endpoint  # the job carries the store's endpoint


def test_a_worker_that_cannot_read_the_store_says_which_store(backend: Backend) -> None:
    if not isinstance(backend.store, S3Store):
        pytest.skip("a store the worker cannot reach")
    unreachable = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    job = batch.map(square, [1], env=unreachable, wait=True)
    error = job.to_frame().loc[0, "error"]
    assert error == (
        f"the worker could not read this run from the object store {backend.store.url} "
        "(see .logs(0))"
    )
    assert f"cannot read run {job.id} from the object store {backend.store.url}" in job.logs(0)[-1]


def test_jobs_show_what_each_run_stores_and_cleanup_frees_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    state = tmp_path / "cleanup"
    with batch.use(state_dir=state) as mine:
        old = batch.map(bytes, [300_000, 200_000], chunksize=1, name="old", wait=True)
        chained = batch.map(len, old, name="chained", wait=True)
        kept = batch.map(square, [1], name="young", wait=True)
        listed = batch.jobs(mine).set_index("name")
        assert listed.loc["old", "stored_mib"] > 0.45  # the two results, 500,000 bytes
        assert 0 < listed.loc["young", "stored_mib"] < 0.1
        with pytest.raises(ClientError, match="older_than: 'soon' is not an age"):
            batch.cleanup("soon")
        assert batch.cleanup("1h").removed == []  # nothing is that old
        result = batch.cleanup(0)
        assert set(result.removed) == {old.id, chained.id, kept.id}  # chained first, then old
        assert result.freed_bytes >= 500_000
        assert repr(result).startswith("removed 3 runs, freed 0.")
        assert batch.jobs(mine).empty and mine.store.list("runs/") == []
        running = batch.map(__import__("time").sleep, [30], name="running")
        out = subprocess.run(
            [sys.executable, "-m", "batchbook", "cleanup", "--older-than", "0s",
             "--state-dir", str(state)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "removed 0 runs, freed 0.0 MiB; kept 1 run (1 still running)" in out.stdout
        running.cancel()
    from batchbook.server.discovery import stop_service

    stop_service(state)


def test_four_first_uses_at_once_on_a_fresh_state_dir_all_succeed(tmp_path: Path) -> None:
    import subprocess
    import sys

    state = tmp_path / "fresh"
    code = (
        "import sys, batchbook as batch\n"
        "batch.use(state_dir=sys.argv[1])\n"
        "print(batch.map(abs, [-1, -2]).results())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    from batchbook.server.discovery import stop_service

    stop_service(state)
    assert [p.returncode for p in procs] == [0] * 4, [err[-500:] for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["[1, 2]"] * 4


def test_making_the_default_queue_again_is_harmless(backend: Backend) -> None:
    """What a second process does when it looked before the first one made the queue."""
    from batchbook.functions.backend import DEFAULT_QUEUE, create_queue

    create_queue(backend.batch, DEFAULT_QUEUE, 2)  # it exists already: taken as it is
    assert [q["jobQueueName"] for q in backend.batch.describe_job_queues()["jobQueues"]].count(
        DEFAULT_QUEUE
    ) == 1


def test_a_handle_survives_a_service_restart(tmp_path: Path) -> None:
    from batchbook.errors import ServiceUnavailable
    from batchbook.server.discovery import stop_service

    state = tmp_path / "restarted"
    with batch.use(state_dir=state) as mine:
        job = batch.map(square, range(4), chunksize=1, retries=1, wait=True)
        stop_service(state)  # the service is gone; the handle does not know yet
        assert job.results() == [0, 1, 4, 9]  # read again: the service is found (started) again
        assert mine.service.url and batch.map(square, [5]).results() == [25]
        stop_service(state)
        job.wait()  # also through wait's long-poll
        stop_service(state)
        dead = mine.batch._client
        mine.batch._reconnect = None  # without a way back: a clear error, not botocore's
        mine.batch._client = dead
        with pytest.raises(
            ServiceUnavailable, match=r"DescribeJobs: http://127.0.0.1:\d+ does not answer"
        ):
            mine.batch.describe_jobs(jobs=[job.job_id])
    stop_service(state)
