"""Every process of an attempt dies with it, even one that called setsid: on exit, on
TerminateJob, on timeout, and when the fork server itself is killed (before the retry
starts). With cgroups where they can be made, and with the /proc fallback (subreaper)."""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchbook.runtime.containment import (
    CGROUPS_ENV,
    make_cgroup_root,
    remove_cgroup,
    wait_gone,
)
from batchbook.runtime.local import LocalBatch
from batchbook.vocabulary import HOST_LOST

# The attempt starts a grandchild in a session of its own (out of its process group), says
# its pid, and then does what the test wants: exit at once, or wait to be stopped.
ESCAPE = textwrap.dedent(
    """
    import os, subprocess, sys, time
    child = subprocess.Popen(["sleep", "3600"], start_new_session=True)
    print("escaped", child.pid, flush=True)
    if sys.argv[1] == "wait":
        time.sleep(3600)
    """
)


@pytest.fixture(params=["cgroups", "proc"])
def lb(request: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBatch]:
    if request.param == "cgroups":
        probe = make_cgroup_root(f"batchbook-probe-{os.getpid()}")
        if probe is None:
            pytest.skip("no writable cgroup v2 here")
        remove_cgroup(probe)
    else:
        monkeypatch.setenv(CGROUPS_ENV, "off")
    engine = LocalBatch(tmp_path / "state", min_timeout_seconds=1, kill_grace_seconds=0.5)
    engine.create_compute_environment(
        computeEnvironmentName="ce", type="UNMANAGED", unmanagedvCpus=4
    )
    engine.create_job_queue(
        jobQueueName="q",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "ce"}],
    )
    engine.register_job_definition(
        jobDefinitionName="escape",
        type="container",
        containerProperties={
            "image": "x",
            "command": ["python", "-c", ESCAPE, "Ref::mode"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
        },
    )
    yield engine
    engine.close()


def submit(lb: LocalBatch, mode: str, **kw: Any) -> str:
    job_id: str = lb.submit_job(
        jobName="escape", jobQueue="q", jobDefinition="escape", parameters={"mode": mode}, **kw
    )["jobId"]
    return job_id


def escaped_pid(lb: LocalBatch, job_id: str, attempt: int = 0) -> int:
    """The grandchild's pid, from attempt ``attempt``'s log (0-based), waiting on the engine's
    changes for it to appear."""
    version = 0
    for _ in range(2000):
        job = lb.describe_jobs(jobs=[job_id])["jobs"][0]
        attempts = job.get("attempts", [])
        if len(attempts) > attempt:
            stream = attempts[attempt]["container"].get("logStreamName")
        elif len(attempts) == attempt and job["status"] in ("STARTING", "RUNNING"):
            stream = job["container"].get("logStreamName")
        else:
            stream = None
        for _, line in lb.log_events(stream) if stream else ():
            if line.startswith("escaped "):
                return int(line.split()[1])
        version = lb.wait_for_change(version, 0.05)
    raise AssertionError(f"{job_id} never said its grandchild's pid")


def gone(pid: int, timeout: float = 10) -> bool:
    """Whether ``pid`` has ended (a zombie has) within ``timeout``: waited on through a pidfd."""
    return wait_gone({pid}, timeout)


def test_what_an_attempt_left_behind_dies_when_it_exits(lb: LocalBatch) -> None:
    job = submit(lb, "exit")
    pid = escaped_pid(lb, job)
    assert lb.wait([job], timeout=30)[job] == "SUCCEEDED"
    assert gone(pid)


def test_terminate_and_timeout_kill_the_whole_attempt(lb: LocalBatch) -> None:
    job = submit(lb, "wait")
    pid = escaped_pid(lb, job)
    lb.terminate_job(jobId=job, reason="enough")
    assert lb.wait([job], timeout=30)[job] == "FAILED"
    assert gone(pid)
    timed = submit(lb, "wait", timeout={"attemptDurationSeconds": 1})
    pid = escaped_pid(lb, timed)
    assert lb.wait([timed], timeout=30)[timed] == "FAILED"
    assert gone(pid)


def test_a_killed_fork_server_takes_its_attempts_with_it_before_the_retry(lb: LocalBatch) -> None:
    job = submit(lb, "wait", retryStrategy={"attempts": 2})
    pid = escaped_pid(lb, job)
    leader = lb._pids[next(iter(lb._pids))][0]
    assert lb.launcher.proc is not None
    os.kill(lb.launcher.proc.pid, signal.SIGKILL)
    retry_pid = escaped_pid(lb, job, attempt=1)  # the retry runs...
    assert gone(pid, 0) and gone(leader, 0)  # ...and the first attempt was gone before it did
    [detail] = lb.describe_jobs(jobs=[job])["jobs"]
    assert detail["attempts"][0]["statusReason"] == HOST_LOST
    lb.terminate_job(jobId=job, reason="done")
    assert lb.wait([job], timeout=30)[job] == "FAILED"
    assert gone(retry_pid)


DAEMON = textwrap.dedent(
    """
    import subprocess, time
    subprocess.run(["sh", "-c", "sleep 3600 & echo escaped $!"])  # its shell exits at once
    time.sleep(3600)
    """
)


def test_another_attempts_end_spares_a_running_attempts_processes(lb: LocalBatch) -> None:
    lb.register_job_definition(
        jobDefinitionName="daemon",
        type="container",
        containerProperties={
            "image": "x",
            "command": ["python", "-c", DAEMON],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
        },
    )
    holder = lb.submit_job(jobName="holder", jobQueue="q", jobDefinition="daemon")["jobId"]
    daemon = escaped_pid(lb, holder)  # handed to the fork server while its attempt runs
    quick = submit(lb, "exit")
    assert lb.wait([quick], timeout=30)[quick] == "SUCCEEDED"
    assert gone(escaped_pid(lb, quick))  # (that one's own grandchild went)...
    assert not gone(daemon, 0.5)  # ...but the running attempt's process stays
    lb.terminate_job(jobId=holder, reason="done")
    assert lb.wait([holder], timeout=30)[holder] == "FAILED"
    assert gone(daemon)
