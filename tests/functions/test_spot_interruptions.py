"""A map on a spot compute environment that rehearses interruptions, with real processes:
each input's first attempt gets EC2's notice in the file BATCHBOOK_SPOT_NOTICE_FILE names,
keeps a checkpoint, is killed as its instance goes, and the map's retry rules (a lost host
is retried without counting against retries=) carry every input through, the second
attempt resuming from the checkpoint. Deterministic with the seed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.engine.spot import interruption
from batchbook.functions.backend import LOCAL_INSTANCE_ROLE, Backend

NAME = "spotted"
RATE = "700"  # interruptions per instance-hour: about one every 5 s


@pytest.fixture(scope="module")
def backend(folder_backend: Backend) -> Backend:
    return folder_backend


def watches_for_the_notice(x: int, folder: str) -> tuple[int, str | None]:
    """Works for 1.5 s; on a notice, keeps it and a checkpoint, and waits to be stopped; an
    attempt after that resumes from the checkpoint."""
    resumed = batch.restore(default=None)
    notice = Path(os.environ["BATCHBOOK_SPOT_NOTICE_FILE"])
    attempt = os.environ["AWS_BATCH_JOB_ATTEMPT"]
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        if notice.exists():
            Path(folder, f"{x}-{attempt}").write_text(notice.read_text())
            batch.checkpoint(f"saved by attempt {attempt} at the notice")
            time.sleep(120)  # until the instance goes (SIGTERM)
        time.sleep(0.01)
    return x * 10, resumed


def seed_for(ce: dict[str, object], inputs: int) -> str:
    """A seed whose draws interrupt each input's first attempt early and spare its second."""
    for seed in range(100_000):
        tagged = {**ce, "tags": {**ce["tags"], "batchbook:spotSeed": str(seed)}}  # type: ignore[dict-item]
        first = [interruption(tagged, f"{NAME}/{i}/None/1") for i in range(inputs)]
        second = [interruption(tagged, f"{NAME}/{i}/None/2") for i in range(inputs)]
        if all(f and f.after_ms < 300 for f in first) and all(
            s and s.after_ms > 8000 for s in second
        ):
            return str(seed)
    raise AssertionError("no seed found")


def test_a_map_survives_spot_interruptions_rehearsed_with_a_seed(
    backend: Backend, tmp_path: Path
) -> None:
    ce = {
        "computeResources": {"type": "SPOT"},
        "tags": {"batchbook:spotInterruptionsPerHour": RATE, "batchbook:spotNoticeSeconds": "31"},
    }
    seed = seed_for(ce, 2)
    backend.batch.create_compute_environment(
        computeEnvironmentName="reclaimed",
        type="MANAGED",
        computeResources={"type": "SPOT", "minvCpus": 0, "maxvCpus": 2,
                          "instanceRole": LOCAL_INSTANCE_ROLE},
        tags={**ce["tags"], "batchbook:spotSeed": seed},  # type: ignore[dict-item]
    )  # fmt: skip
    backend.batch.create_job_queue(
        jobQueueName="spot", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "reclaimed"}],
    )  # fmt: skip
    job = batch.map(
        watches_for_the_notice, [0, 1], [str(tmp_path)] * 2, chunksize=1, queue="spot", name=NAME
    )
    frame = job.wait(timeout=120, progress=False).to_frame()
    # retries=0: the lost hosts did not count; the second attempts resumed from checkpoints
    assert frame["result"].tolist() == [(0, "saved by attempt 1 at the notice"),
                                        (10, "saved by attempt 1 at the notice")]  # fmt: skip
    assert frame["attempts"].tolist() == [2, 2]
    tagged = {**ce, "tags": {**ce["tags"], "batchbook:spotSeed": seed}}
    for i, child in enumerate(backend.describe(job.chunk_job_ids)):
        planned = interruption(tagged, f"{NAME}/{i}/None/1")  # type: ignore[arg-type]
        assert planned is not None
        assert child["attempts"][0]["statusReason"] == planned.reason  # Host EC2 (i-...)
        notice = json.loads((tmp_path / f"{i}-1").read_text())  # the worker read the notice
        assert notice["action"] == "terminate" and notice["time"].endswith("Z")
        assert not (tmp_path / f"{i}-2").exists()  # the second attempt was spared
