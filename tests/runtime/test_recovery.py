"""Nothing accepted is lost: reopen, restart after kill -9, one engine per state dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchbook.errors import StateDirInUse
from batchbook.runtime.local import LocalBatch
from batchbook.runtime.statedb import StateDB
from tests.runtime.conftest import run_python, setup_local

ENGINE_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
from conftest import setup_local
from batchbook.runtime.local import LocalBatch
lb = LocalBatch(sys.argv[1], min_timeout_seconds=1)
setup_local(lb, max_vcpus=2)
code = (
    "import os, time; i = os.environ['AWS_BATCH_JOB_ARRAY_INDEX']; a = os.environ['AWS_BATCH_JOB_ATTEMPT']\n"
    "open(os.path.join(%r, f'start-{i}-{a}'), 'w').write(str(os.getpid()))\n"
    "time.sleep(0.3)\n"
    "open(os.path.join(%r, f'done-{i}-{a}'), 'w')\n"
) % (sys.argv[2], sys.argv[2])
job = lb.submit_job(jobName="survivor", jobQueue="q", jobDefinition="py", arrayProperties={"size": 12},
                    retryStrategy={"attempts": 2, "evaluateOnExit": [{"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onExitCode": "*", "action": "EXIT"}]},
                    containerOverrides={"command": ["python", "-c", code]})["jobId"]
print(job, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_kill_9_of_the_engine_mid_array_loses_nothing(tmp_path: Path) -> None:
    state, marks = tmp_path / "state", tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "engine.py"
    script.write_text(ENGINE_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(state), str(marks), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    job = proc.stdout.readline().strip()  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while len(list(marks.glob("done-*"))) < 4:  # some children finished, two are mid-run
        assert time.monotonic() < deadline, "the engine made no progress"
        time.sleep(0.02)
    while len(list(marks.glob("start-*"))) <= len(list(marks.glob("done-*"))):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    interrupted = {p.name.split("-")[1] for p in marks.glob("start-*")} - {
        p.name.split("-")[1] for p in marks.glob("done-*")
    }
    assert interrupted, "nothing was running at the kill"
    # the fork server notices and takes the running attempts with it
    for pid_file in marks.glob("start-*"):
        pid = int(pid_file.read_text())
        _wait_gone(pid)

    with LocalBatch(state, min_timeout_seconds=1) as lb:
        assert lb.wait([job], timeout=60)[job] == "SUCCEEDED"
        children = lb.describe_jobs(jobs=[f"{job}:{i}" for i in range(12)])["jobs"]
    assert all(c["status"] == "SUCCEEDED" for c in children)
    for child in children:
        index = str(child["arrayProperties"]["index"])
        if index in interrupted:
            assert len(child["attempts"]) == 2
            assert child["attempts"][0]["statusReason"] == "Host EC2 (instance local) terminated."
            assert child["attempts"][1]["container"]["exitCode"] == 0
        assert (marks / f"done-{index}-{len(child['attempts'])}").exists()


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        assert time.monotonic() < deadline, f"process {pid} outlived its engine"
        time.sleep(0.02)


def test_a_reopened_engine_has_everything(tmp_path: Path) -> None:
    with LocalBatch(tmp_path / "state") as lb:
        setup_local(lb)
        done = run_python(lb, "print('persisted')")
        lb.update_compute_environment(computeEnvironment="ce", state="DISABLED")
        waiting = run_python(lb, "print('later')", name="later", wait=False)["jobId"]
    with LocalBatch(tmp_path / "state") as lb:
        assert lb.describe_jobs(jobs=[done["jobId"]])["jobs"][0] == done
        assert lb.describe_compute_environments()["computeEnvironments"][0]["state"] == "DISABLED"
        deadline = time.monotonic() + 10
        while (
            lb.describe_jobs(jobs=[waiting])["jobs"][0]["status"] != "RUNNABLE"
        ):  # admitted, no capacity
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert "no ENABLED compute environment" in lb.why(waiting)
        lb.update_compute_environment(computeEnvironment="ce", state="ENABLED")
        assert lb.wait([waiting], timeout=30)[waiting] == "SUCCEEDED"
    events = StateDB(tmp_path / "state" / "state.db", readonly=True).events(waiting)
    assert [status for _, status, _ in events] == [
        "SUBMITTED",
        "PENDING",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "SUCCEEDED",
    ]


def test_one_engine_per_state_dir(tmp_path: Path) -> None:
    with LocalBatch(tmp_path / "state"), pytest.raises(StateDirInUse, match="in use by engine pid"):
        LocalBatch(tmp_path / "state")


def test_a_stale_group_is_killed_only_if_its_leader_is_the_process_we_forked() -> None:
    import subprocess

    from batchbook.runtime.proc import boot_ticks, kill_stale_group

    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    forked_at = boot_ticks()
    try:
        assert not kill_stale_group(proc.pid, forked_at + 1000)  # another process's start time
        assert proc.poll() is None
        assert kill_stale_group(proc.pid, forked_at)
        assert proc.wait(timeout=10) == -9
    finally:
        proc.kill()
