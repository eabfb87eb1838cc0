"""Why a job is stuck, each case from a real stuck job on the local engine (never a state
made up for the test), read through the Batch API alone: job.diagnose(), the CLI's
`batchbook why`, and the same code on the AWS backend."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import batchbook as batch
from batchbook.functions.backend import LOCAL_INSTANCE_ROLE, Backend, create_queue
from batchbook.functions.diagnosis import ACTION_REQUIRED, CAPACITY, REQUIREMENT, diagnose
from batchbook.server.discovery import stop_service
from tests.functions.conftest import until
from tests.server.conftest import start


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    state = tmp_path_factory.mktemp("why") / "state"
    start(state)  # timeouts and state time limits down to 1 s
    b = batch.use(state_dir=state)
    create_queue(b.batch, "diag", 2)
    yield b
    stop_service(state)


def gated(gate: str) -> str:
    while not os.path.exists(gate):  # on the worker: until the test opens the gate
        time.sleep(0.02)
    return gate


def status_of(backend: Backend, job_id: str) -> str:
    return str(backend.describe([job_id])[0]["status"])


def test_a_job_waiting_on_its_dependency_names_it_and_its_status(
    backend: Backend, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    first = batch.map(gated, [str(gate)], queue="diag", name="first")
    then = batch.map(abs, [-1], depends_on=first, queue="diag", name="then")
    until(backend, lambda: status_of(backend, first.job_id) == "RUNNING")
    why = then.diagnose()
    assert why.status == "PENDING" and why.category is None
    assert f"waiting on 1 dependency: {first.job_id} (first) is RUNNING" in why.summary
    assert f"dependency {first.job_id} (first) is RUNNING" in why.evidence
    gate.touch()
    then.wait(timeout=120, progress=False)
    assert then.diagnose().summary.startswith("it is over")


def test_maxvcpus_taken_by_other_jobs_then_a_disabled_queue_then_no_environment(
    backend: Backend, tmp_path: Path
) -> None:
    create_queue(backend.batch, "hi", 2, priority=10, ce="shared")
    create_queue(backend.batch, "lo", 2, priority=1, ce="shared")
    gate = tmp_path / "gate"
    holder = batch.map(gated, [str(gate)] * 2, chunksize=1, queue="hi", name="holder")
    until(backend, lambda: holder.status().get("RUNNING") == 2)  # an array: two children
    waiting = batch.map(abs, [-1], queue="lo", name="waiting")
    until(backend, lambda: status_of(backend, waiting.job_id) == "RUNNABLE")
    why = waiting.diagnose()
    assert why.summary == (
        "maxvCpus is taken: 2 of 2 vCPUs are in use by 2 other jobs, and it needs 1"
    )
    assert f"holder ({holder.job_id}, queue hi) holds 2 vCPU in 2 running children" in why.evidence
    assert "queues that come first by priority: hi (priority 10)" in why.evidence

    backend.batch.update_job_queue(jobQueue="lo", state="DISABLED")
    until(backend, lambda: "DISABLED" in waiting.diagnose().summary)
    why = waiting.diagnose()
    assert why.summary == "its queue lo is DISABLED: nothing in it starts"
    assert why.suggestions == ["aws batch update-job-queue --job-queue lo --state ENABLED"]

    backend.batch.update_job_queue(jobQueue="lo", state="ENABLED")
    backend.batch.update_compute_environment(computeEnvironment="shared", state="DISABLED")
    until(backend, lambda: "ENABLED and VALID" in waiting.diagnose().summary)
    why = waiting.diagnose()
    assert why.category == ACTION_REQUIRED
    assert why.summary == "no compute environment of queue lo is ENABLED and VALID"
    assert any(e.startswith("compute environment shared: DISABLED") for e in why.evidence)
    assert why.suggestions == [
        "aws batch update-compute-environment --compute-environment shared --state ENABLED"
    ]
    backend.batch.update_compute_environment(computeEnvironment="shared", state="ENABLED")
    gate.touch()
    assert waiting.wait(timeout=120, progress=False).results() == [1]


def test_a_request_no_environment_can_give_names_the_request_the_limit_and_the_fix(
    backend: Backend,
) -> None:
    job = batch.map(abs, [-1], vcpus=64, queue="diag", name="huge")
    until(backend, lambda: bool(backend.describe([job.job_id])[0].get("statusReason")))
    why = job.diagnose()
    assert why.category == REQUIREMENT
    assert why.summary.startswith("it asks for 64 vCPU, 2,048 MiB, more than any compute")
    assert "diag gives at most 2 vCPU" in why.evidence[0]
    assert any("--job-state-time-limit-actions" in s and REQUIREMENT in s for s in why.suggestions)
    shown = subprocess.run(  # the same, from the command line, by the map's name
        [sys.executable, "-m", "batchbook", "why", "huge", "--state-dir", str(backend.service.state_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"huge ({job.job_id}) is RUNNABLE: it asks for 64 vCPU" in shown.stdout
    assert f"[{REQUIREMENT}]" in shown.stdout
    job.cancel()


def test_spot_capacity_not_granted_and_the_state_limit_that_cancels_it(backend: Backend) -> None:
    backend.batch.create_compute_environment(
        computeEnvironmentName="spotty",
        type="MANAGED",
        computeResources={"type": "SPOT", "minvCpus": 0, "maxvCpus": 4,
                          "instanceRole": LOCAL_INSTANCE_ROLE, "instanceTypes": ["m6i"]},
        tags={"batchbook:spotCapacityVcpus": "1"},  # spot grants one vCPU of the four
    )  # fmt: skip
    backend.batch.create_job_queue(
        jobQueueName="spot", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "spotty"}],
    )  # fmt: skip
    job = batch.map(abs, [-1], vcpus=2, queue="spot", name="short")
    until(backend, lambda: bool(backend.describe([job.job_id])[0].get("statusReason")))
    why = job.diagnose()
    assert why.category == CAPACITY
    assert why.summary.startswith("spot capacity is not granted for it in spotty")
    assert why.evidence[0].startswith(f"{CAPACITY} - Service cannot fulfill the capacity")
    [limit] = [s for s in why.suggestions if "--job-state-time-limit-actions" in s]
    # the action it suggests does what it says (with 1 s instead of 600)
    backend.batch.update_job_queue(
        jobQueue="spot",
        jobStateTimeLimitActions=[
            {"reason": CAPACITY, "state": "RUNNABLE", "maxTimeSeconds": 1, "action": "CANCEL"}
        ],
    )
    [done] = backend.wait_jobs([job.job_id], timeout=60)
    assert done["status"] == "FAILED"
    assert done["statusReason"] == f"Canceled by JobStateTimeLimit action due to reason: {CAPACITY}"
    assert '"maxTimeSeconds": 600, "action": "CANCEL"' in limit


def test_earlier_attempts_killed_for_memory_or_time_are_part_of_the_story(
    backend: Backend, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    code = (
        "import os, pathlib, time\n"
        "if os.environ['AWS_BATCH_JOB_ATTEMPT'] == '1':\n"
        "    hog = bytearray(400 << 20)\n    time.sleep(60)\n"
        f"while not pathlib.Path({str(gate)!r}).exists():\n    time.sleep(0.02)\n"
    )
    for name, run, extra in (
        ("hungry-first", code, {"retryStrategy": {"attempts": 2}}),
        ("too-slow", "import time; time.sleep(60)", {"timeout": {"attemptDurationSeconds": 1}}),
    ):
        backend.batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={"image": "python", "command": [sys.executable, "-c", run],
                                 "vcpus": 1, "memory": 128},
            **extra,
        )  # fmt: skip
    hungry = backend.batch.submit_job(
        jobName="hungry", jobQueue="diag", jobDefinition="hungry-first"
    )
    slow = backend.batch.submit_job(jobName="slow", jobQueue="diag", jobDefinition="too-slow")

    def second_runs() -> bool:
        detail: dict[str, Any] = backend.describe([hungry["jobId"]])[0]
        return detail["status"] == "RUNNING" and len(detail.get("attempts", [])) == 1

    until(backend, second_runs)
    why = diagnose(backend, hungry["jobId"])
    assert why.summary == "its attempt 2 is running"
    assert why.evidence[0].startswith("attempt 1 was killed for memory (OutOfMemoryError")
    assert why.evidence[0].endswith("raise memory=")
    [over] = backend.wait_jobs([slow["jobId"]], timeout=60)  # a timed-out attempt is final
    why = diagnose(backend, slow["jobId"])
    assert why.summary == f"it is over ({over['statusReason']})"
    assert "attempt 1 timed out (timeout 1 s): raise timeout= or split the work" in why.evidence
    gate.touch()
    backend.wait_jobs([hungry["jobId"]], timeout=60)
