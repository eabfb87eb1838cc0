"""One service per state dir, found again by new processes, surviving crashes and clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

from batchbook.server.discovery import find_service, stop_service
from batchbook.vocabulary import HOST_LOST
from tests.server.conftest import checked_client, make_jobdef, make_queue, start, wait_jobs

ROOT = Path(__file__).resolve().parents[2]


def python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """A separate client process (a notebook kernel, say) running ``code``."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def test_two_clients_starting_at_once_get_one_service(tmp_path: Path) -> None:
    code = """
        import sys
        from batchbook.server.discovery import ensure_service
        print(ensure_service(sys.argv[1], serve_args=["--min-timeout", "1"]).pid)
    """
    procs = [python(code, str(tmp_path / "state")) for _ in range(3)]
    try:
        pids = {finish(p).strip() for p in procs}
        assert len(pids) == 1
        service = find_service(tmp_path / "state")
        assert service is not None and str(service.pid) in pids
    finally:
        stop_service(tmp_path / "state")


def test_stale_discovery_file_is_replaced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (state / "service.json").write_text(
        json.dumps({"url": "http://127.0.0.1:9", "port": 9, "pid": dead.pid})
    )
    assert find_service(state) is None
    service = start(state)
    try:
        assert service.pid != dead.pid
        assert json.loads((state / "service.json").read_text())["pid"] == service.pid
        assert checked_client(service).describe_job_queues()["jobQueues"] == []
    finally:
        stop_service(state)
    assert not (state / "service.json").exists()
    assert find_service(state) is None


def test_kernel_restart_finds_the_jobs_again(tmp_path: Path) -> None:
    """A client submits and exits; the service keeps the jobs running; a new client finds them."""
    state = str(tmp_path / "state")
    first = python(
        """
        import sys
        from batchbook.server.discovery import ensure_service
        from tests.server.conftest import make_jobdef, make_queue
        service = ensure_service(sys.argv[1], serve_args=["--min-timeout", "1"])
        batch = service.client()
        make_queue(batch)
        make_jobdef(batch, code="import time; time.sleep(0.5)")
        job = batch.submit_job(jobName="survivor", jobQueue="q", jobDefinition="py",
                               arrayProperties={"size": 3})
        print(service.pid, job["jobId"])
        """,
        state,
    )
    try:
        pid, job_id = finish(first).split()
        assert psutil.pid_exists(int(pid))  # the service outlived the client that started it
        second = python(
            """
            import json, sys
            from batchbook.server.discovery import ensure_service
            from tests.server.conftest import wait_jobs
            service = ensure_service(sys.argv[1])
            batch = service.client()
            listed = [j["jobId"] for j in batch.list_jobs(
                jobQueue="q", filters=[{"name": "JOB_NAME", "values": ["surv*"]}])["jobSummaryList"]]
            (parent,) = wait_jobs(batch, listed)
            print(json.dumps({"pid": service.pid, "listed": listed, "status": parent["status"],
                              "summary": parent["arrayProperties"]["statusSummary"]}))
            """,
            state,
        )
        seen = json.loads(finish(second))
        assert seen["pid"] == int(pid)  # found the same service, not a new one
        assert seen["listed"] == [job_id]
        assert seen["status"] == "SUCCEEDED" and seen["summary"]["SUCCEEDED"] == 3
    finally:
        stop_service(state)


def test_kill_9_of_the_service_mid_run_loses_no_job(tmp_path: Path) -> None:
    state = tmp_path / "state"
    service = start(state)
    batch = checked_client(service)
    make_queue(batch, max_vcpus=2)
    make_jobdef(batch, code="import time; time.sleep(1.5)", retryStrategy={"attempts": 2})
    job = batch.submit_job(
        jobName="arr", jobQueue="q", jobDefinition="py", arrayProperties={"size": 4}
    )
    job_id = job["jobId"]
    queued = batch.submit_job(jobName="later", jobQueue="q", jobDefinition="py")["jobId"]
    while (
        batch.describe_jobs(jobs=[job_id])["jobs"][0]["arrayProperties"]["statusSummary"]["RUNNING"]
        < 2
    ):
        pass
    service_proc = psutil.Process(service.pid)
    workers = [c for c in service_proc.children(recursive=True) if "sleep" in " ".join(c.cmdline())]
    os.kill(service.pid, signal.SIGKILL)
    service_proc.wait(10)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive  # the fork server took the attempts down with the dead service
    assert find_service(state) is None  # the discovery file is stale now

    restarted = start(state)
    try:
        assert restarted.pid != service.pid
        batch = checked_client(restarted)
        children = [f"{job_id}:{i}" for i in range(4)]
        jobs = wait_jobs(batch, [job_id, queued, *children])
        assert [j["status"] for j in jobs] == ["SUCCEEDED"] * 6
        lost = [j for j in jobs[2:] if len(j["attempts"]) == 2]
        assert len(lost) == 2  # the two that were running when the service died ran again
        for j in lost:
            assert j["attempts"][0]["statusReason"] == HOST_LOST
    finally:
        stop_service(state)


@pytest.mark.slow
def test_eight_clients_submitting_1000_jobs_each_lose_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    service = start(state)
    try:
        batch = checked_client(service)
        make_queue(batch, max_vcpus=2)
        make_jobdef(batch)
        code = """
            import json, sys
            from batchbook.server.discovery import ensure_service
            batch = ensure_service(sys.argv[1]).client()
            k = sys.argv[2]
            sys.stdin.readline()  # all eight start together
            ids = {}
            for i in range(1000):
                name = f"c{k}-{i}"
                ids[name] = batch.submit_job(jobName=name, jobQueue="q", jobDefinition="py",
                                             parameters={"who": name})["jobId"]
            print(json.dumps(ids))
        """
        procs = [python(code, str(state), str(k), stdin=subprocess.PIPE) for k in range(8)]
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        submitted: dict[str, str] = {}
        for p in procs:
            submitted.update(json.loads(finish(p, timeout=300)))
        assert len(submitted) == 8000 and len(set(submitted.values())) == 8000
        jobs = wait_jobs(service.client(), list(submitted.values()), timeout=300)  # unchecked: fast
        assert [j["status"] for j in jobs] == ["SUCCEEDED"] * 8000
        by_id = {j["jobId"]: j for j in jobs}
        for name, job_id in submitted.items():
            assert by_id[job_id]["jobName"] == name
            assert by_id[job_id]["parameters"] == {"who": name}
    finally:
        stop_service(state)


def test_the_service_comes_back_on_its_port_and_moves_only_when_it_is_taken(
    tmp_path: Path,
) -> None:
    import socket

    state = tmp_path / "state"
    first = start(state)
    port = int(first.url.rsplit(":", 1)[1])
    stop_service(state)
    again = start(state)  # the ~/.aws/config profile printed by `batchbook status` stays right
    assert again.url == first.url and again.pid != first.pid
    stop_service(state)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        moved = start(state)
        assert moved.url != first.url
        checked_client(moved).describe_job_queues()  # it answers on the new port
    stop_service(state)


def test_status_says_how_to_start_the_service_and_repr_keeps_the_secret(tmp_path: Path) -> None:
    state = tmp_path / "state"
    status = [sys.executable, "-m", "batchbook", "status", "--state-dir", str(state)]
    out = subprocess.run(status, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1
    assert f"no batchbook service is running for {state}" in out.stdout
    assert f"batchbook serve --state-dir {state}" in out.stdout
    service = start(state)
    try:
        secret = service.credentials.secret_key
        assert secret not in repr(service) and secret not in str(service)
        assert service.credentials.access_key in repr(service)
        out = subprocess.run(status, capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0 and service.url in out.stdout
        assert secret in out.stdout  # the profile itself is what status is for
    finally:
        stop_service(state)
