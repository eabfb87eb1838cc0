"""Local engine throughput: a 10,000-child array of a trivial ``python -c`` end to end,
in-process and through ``batchbook serve`` (what every user runs, with boto3), and how long
the array parent's DescribeJobs takes while its children run.

Compares with the peer way of running one fresh interpreter per child (subprocess,
as many at once as there are cores) in the same run, and measures the idle engine's
memory. Targets: >= 1,000 children/s on 2 cores, in-process and through the service; the
parent's DescribeJobs during the run <= 5 ms (median); idle engine <= 80 MB RSS.

    python bench/engine_throughput.py [--children 10000] [--peer-children 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import psutil

from batchbook.functions.backend import create_queue
from batchbook.runtime.local import LocalBatch

CHILD = ["python", "-c", "pass"]


def setup(lb: LocalBatch, max_vcpus: int) -> None:
    create_queue(lb, "bench", max_vcpus)
    lb.register_job_definition(
        jobDefinitionName="trivial",
        type="container",
        containerProperties={"image": "python:3.11", "command": CHILD, "vcpus": 1, "memory": 128},
    )


def engine_rate(children: int, max_vcpus: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as state, LocalBatch(state) as lb:
        setup(lb, max_vcpus)
        started = time.perf_counter()
        job = lb.submit_job(
            jobName="bench",
            jobQueue="bench",
            jobDefinition="trivial",
            arrayProperties={"size": children},
        )["jobId"]
        status = lb.wait([job])[job]
        elapsed = time.perf_counter() - started
        summary = lb.describe_jobs(jobs=[job])["jobs"][0]["arrayProperties"]["statusSummary"]
        if status != "SUCCEEDED" or summary["SUCCEEDED"] != children:
            raise SystemExit(f"bench job ended {status}: {summary}")
        return children / elapsed, elapsed


def service_rate(children: int, max_vcpus: int) -> tuple[float, float, list[float]]:
    """Children/s through the local service, and the parent's DescribeJobs times (ms) while
    they run (one client asks all along, as a watching view would)."""
    from batchbook.server.discovery import ensure_service, stop_service

    with tempfile.TemporaryDirectory() as state:
        service = ensure_service(state)
        try:
            batch = service.client("batch")
            setup(batch, max_vcpus)
            started = time.perf_counter()
            job = batch.submit_job(
                jobName="bench",
                jobQueue="bench",
                jobDefinition="trivial",
                arrayProperties={"size": children},
            )["jobId"]
            describe_ms: list[float] = []
            while True:
                asked = time.perf_counter()
                (detail,) = batch.describe_jobs(jobs=[job])["jobs"]
                describe_ms.append((time.perf_counter() - asked) * 1000)
                if detail["status"] in ("SUCCEEDED", "FAILED"):
                    break
            elapsed = time.perf_counter() - started
            if detail["arrayProperties"]["statusSummary"]["SUCCEEDED"] != children:
                raise SystemExit(f"bench job ended {detail['status']}")
            return children / elapsed, elapsed, describe_ms
        finally:
            stop_service(state)


def peer_rate(children: int) -> float:
    cmd = [sys.executable, *CHILD[1:]]
    started = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        codes = list(
            pool.map(lambda _: subprocess.run(cmd, check=False).returncode, range(children))
        )
    assert not any(codes)
    return children / (time.perf_counter() - started)


def idle_memory_mb() -> tuple[float, float]:
    code = (
        "import sys, tempfile, time; from batchbook.runtime.local import LocalBatch\n"
        "lb = LocalBatch(tempfile.mkdtemp()); print(lb.launcher.proc.pid, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(proc.stdout.readline())  # type: ignore[union-attr]
        time.sleep(1.0)
        engine = psutil.Process(proc.pid).memory_info().rss / 1e6
        server = psutil.Process(server_pid).memory_info().rss / 1e6
        return engine, server
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--children", type=int, default=10_000)
    parser.add_argument("--peer-children", type=int, default=300)
    parser.add_argument("--max-vcpus", type=int, default=16)
    args = parser.parse_args()
    rate, elapsed = engine_rate(args.children, args.max_vcpus)
    served, served_elapsed, describe_ms = service_rate(args.children, args.max_vcpus)
    peer = peer_rate(args.peer_children)
    engine_mb, server_mb = idle_memory_mb()
    print(
        f"engine: {args.children} children of `python -c pass` in {elapsed:.2f} s = {rate:,.0f} children/s "
        f"(compute environment maxvCpus={args.max_vcpus}, {os.cpu_count()} cores)"
    )
    print(
        f"service: {args.children} children through `batchbook serve` in {served_elapsed:.2f} s = "
        f"{served:,.0f} children/s; the parent's DescribeJobs meanwhile: median "
        f"{statistics.median(describe_ms):.1f} ms, max {max(describe_ms):.1f} ms "
        f"({len(describe_ms)} calls)"
    )
    print(f"peer (fresh interpreter per child, {os.cpu_count()} at a time): {peer:,.0f} children/s")
    print(f"idle engine RSS: {engine_mb:.1f} MB (+ fork server {server_mb:.1f} MB)")
    print(
        f"ratio: engine/peer = {rate / peer:.1f}x; target >= 1000 children/s: {'met' if rate >= 1000 else 'NOT met'}; "
        f"idle <= 80 MB: {'met' if engine_mb <= 80 else 'NOT met'}"
    )
    median = statistics.median(describe_ms)
    print(
        f"ratio: service/peer = {served / peer:.1f}x; target >= 1000 children/s: "
        f"{'met' if served >= 1000 else 'NOT met'}; parent DescribeJobs median {median:.1f} ms, "
        f"target <= 5 ms: {'met' if median <= 5 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
