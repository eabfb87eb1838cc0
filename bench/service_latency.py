"""Local service through boto3: warm submit->SUCCEEDED latency and DescribeJobs throughput.

Starts the service of a fresh temporary state dir (as a notebook would, through
discovery) and, through a real boto3 ``batch`` client:

1. submits one trivial job at a time (``python -c pass``, 1 vCPU, 256 MiB) after a few
   warm-up jobs and polls DescribeJobs in a tight loop (no sleep) until SUCCEEDED;
2. calls DescribeJobs with 100 ids per call, for a few seconds, over the finished
   children of one array job.

The peer, in the same run, is moto's server (``ThreadedMotoServer``, in a process of its
own, as the service is). moto cannot run containers here (no docker), so it is switched to
its docker-free Batch (``/moto-api/config``: ``batch.use_docker = false``), which marks a job
SUCCEEDED inside SubmitJob without running anything; for it we measure the API round trip
(SubmitJob + one DescribeJobs) and the same DescribeJobs throughput. Target: warm
submit->SUCCEEDED median <= 25 ms.

    python bench/service_latency.py [--quick] [--jobs 50] [--children 2000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from batchbook.functions.backend import create_queue
from batchbook.server.discovery import ensure_service, stop_service
from batchbook.vocabulary import FINAL

COMMAND = ["python", "-c", "pass"]
RESOURCES = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "256"}]
TARGET_MS = 25.0
IDS_PER_CALL = 100
# The same retry configuration as Service.client, so both clients do the same work per call.
CLIENT_CONFIG = {"retries": {"mode": "adaptive", "max_attempts": 10}}

MOTO_SERVER = """
import sys
from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the benchmark closes our stdin (or is gone)
server.stop()
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return seconds * 1000


def register_jobdef(batch: Any) -> None:
    batch.register_job_definition(
        jobDefinitionName="trivial",
        type="container",
        containerProperties={
            "image": "python:3.11",
            "command": COMMAND,
            "resourceRequirements": RESOURCES,
        },
    )


def setup_batchbook(batch: Any, max_vcpus: int) -> None:
    """A compute environment, queue and job definition on the local service."""
    create_queue(batch, "bench", max_vcpus)
    register_jobdef(batch)


def setup_moto(batch: Any, iam: Any) -> None:
    """moto checks the service role against its own IAM, and a MANAGED environment's subnets,
    security groups and instance profile against its EC2/IAM; an UNMANAGED environment with a
    role made in moto's IAM is enough for the API calls measured here."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "batch.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName="bench-batch", AssumeRolePolicyDocument=json.dumps(trust))
    batch.create_compute_environment(
        computeEnvironmentName="bench-ce",
        type="UNMANAGED",
        serviceRole=role["Role"]["Arn"],
        state="ENABLED",
    )
    batch.create_job_queue(
        jobQueueName="bench",
        state="ENABLED",  # moto: "state must be provided" (AWS defaults it to ENABLED)
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": "bench-ce"}],
    )
    register_jobdef(batch)


def submit(batch: Any, **extra: Any) -> str:
    return batch.submit_job(jobName="bench", jobQueue="bench", jobDefinition="trivial", **extra)[
        "jobId"
    ]


def one_job(batch: Any) -> dict[str, Any]:
    """Submit one job and poll DescribeJobs with no sleep until it is final."""
    t0 = time.perf_counter()
    job_id = submit(batch)
    t_submitted = time.perf_counter()
    polls, t_first = 0, 0.0
    while True:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        polls += 1
        if polls == 1:
            t_first = time.perf_counter()
        if job["status"] in FINAL:
            break
    t_end = time.perf_counter()
    if job["status"] != "SUCCEEDED":
        raise SystemExit(f"job {job_id} ended {job['status']}: {job.get('statusReason')}")
    return {
        "total": ms(t_end - t0),
        "round_trip": ms(t_first - t0),  # SubmitJob + one DescribeJobs
        "submit": ms(t_submitted - t0),
        "describe": ms(t_end - t_submitted) / polls,
        "polls": polls,
        # the service's own clock (epoch ms): queued (created->started), ran (started->stopped)
        "queued": job.get("startedAt", 0) - job.get("createdAt", 0),
        "ran": job.get("stoppedAt", 0) - job.get("startedAt", 0),
    }


def latency(batch: Any, jobs: int, warmup: int) -> list[dict[str, Any]]:
    for _ in range(warmup):
        one_job(batch)
    return [one_job(batch) for _ in range(jobs)]


def finished_children(batch: Any, children: int, timeout: float = 600) -> tuple[list[str], float]:
    """One array job of ``children``; its children's ids once it is final, and how long that took."""
    t0 = time.perf_counter()
    parent = submit(batch, arrayProperties={"size": children})
    deadline = time.monotonic() + timeout
    while True:
        job = batch.describe_jobs(jobs=[parent])["jobs"][0]
        if job["status"] in FINAL:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"array job still {job['status']} after {timeout:.0f} s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    summary = job.get("arrayProperties", {}).get("statusSummary", {})
    if job["status"] != "SUCCEEDED":
        raise SystemExit(f"array job ended {job['status']}: {summary}")
    return [f"{parent}:{i}" for i in range(children)], elapsed


def describe_rate(batch: Any, ids: list[str], seconds: float) -> dict[str, float]:
    """DescribeJobs with IDS_PER_CALL ids per call, one call at a time, for ``seconds``.

    Also times each call's HTTP exchange (botocore's before-send to before-parse: sending,
    the server's work, receiving the body); the rest of a call is the client's own (botocore
    serializing, signing and parsing the response into Python objects)."""
    chunks = [ids[i : i + IDS_PER_CALL] for i in range(0, len(ids), IDS_PER_CALL)]
    for chunk in chunks[:3]:  # warm-up
        batch.describe_jobs(jobs=chunk)
    sent, http_s, body_bytes = [0.0], [], []

    def on_send(**_: Any) -> None:
        sent[0] = time.perf_counter()

    def on_parse(response_dict: dict[str, Any], **_: Any) -> None:
        http_s.append(time.perf_counter() - sent[0])
        body_bytes.append(len(response_dict["body"]))

    batch.meta.events.register("before-send.batch.DescribeJobs", on_send)
    batch.meta.events.register("before-parse.batch.DescribeJobs", on_parse)
    calls = described = 0
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        chunk = chunks[calls % len(chunks)]
        got = batch.describe_jobs(jobs=chunk)["jobs"]
        if len(got) != len(chunk) or any(j["status"] != "SUCCEEDED" for j in got):
            raise SystemExit(f"DescribeJobs answered {len(got)} of {len(chunk)} jobs, or not final")
        calls += 1
        described += len(got)
    batch.meta.events.unregister("before-send.batch.DescribeJobs", on_send)
    batch.meta.events.unregister("before-parse.batch.DescribeJobs", on_parse)
    return {
        "jobs_s": described / elapsed,
        "calls_s": calls / elapsed,
        "call_ms": ms(elapsed) / calls,
        "http_ms": ms(statistics.median(http_s)),
        "body_kb": statistics.median(body_bytes) / 1000,
    }


def run_batchbook(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-service-"))
    state_dir = tmp / "state"
    try:
        t0 = time.perf_counter()
        service = ensure_service(state_dir, serve_args=["--min-timeout", "1"])
        started = time.perf_counter() - t0
        try:
            batch = service.client("batch")
            setup_batchbook(batch, args.max_vcpus)
            samples = latency(batch, args.jobs, args.warmup)
            ids, array_s = finished_children(batch, args.children)
            describe = describe_rate(batch, ids, args.seconds)
        finally:
            stop_service(state_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "start_s": started,
        "samples": samples,
        "array_s": array_s,
        **describe,
    }


def start_moto() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.strip().isdigit():
        stop_moto(proc)
        raise SystemExit(f"moto server did not start (said {line!r})")
    url = f"http://127.0.0.1:{int(line)}"
    request = urllib.request.Request(
        f"{url}/moto-api/config",
        data=json.dumps({"batch": {"use_docker": False}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        config = json.loads(resp.read())
    if config.get("batch", {}).get("use_docker") is not False:
        stop_moto(proc)
        raise SystemExit(f"moto did not take batch.use_docker=false: {config}")
    return proc, url


def stop_moto(proc: subprocess.Popen[str]) -> None:
    try:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()  # moto may have threads that never finish; the process goes regardless
        proc.wait()


def run_moto(args: argparse.Namespace) -> dict[str, Any]:
    proc, url = start_moto()
    try:

        def client(name: str) -> Any:
            return boto3.client(
                name,
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="x",
                aws_secret_access_key="x",
                config=Config(**CLIENT_CONFIG),
            )

        batch = client("batch")
        setup_moto(batch, client("iam"))
        samples = latency(batch, args.jobs, args.warmup)
        ids, _ = finished_children(batch, args.children)
        describe = describe_rate(batch, ids, args.seconds)
    finally:
        stop_moto(proc)
    return {"samples": samples, **describe}


def median_of(samples: list[dict[str, Any]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def per_call(r: dict[str, Any]) -> str:
    return (
        f"{r['calls_s']:,.0f} calls/s = {r['call_ms']:.2f} ms per call: {r['http_ms']:.2f} ms HTTP "
        f"(send, server, receive {r['body_kb']:.0f} kB) + {r['call_ms'] - r['http_ms']:.2f} ms in "
        "the client (botocore: serialize, sign, parse)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (fewer jobs, ~1 s)")
    parser.add_argument("--jobs", type=int, default=50, help="measured single jobs")
    parser.add_argument("--warmup", type=int, default=5, help="single jobs run first, unmeasured")
    parser.add_argument("--children", type=int, default=2000, help="array size for DescribeJobs")
    parser.add_argument("--seconds", type=float, default=3.0, help="DescribeJobs measuring time")
    parser.add_argument("--max-vcpus", type=int, default=16)
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.warmup, args.children, args.seconds = 15, 3, 500, 1.0

    bb = run_batchbook(args)
    moto = run_moto(args)

    lat = [s["total"] for s in bb["samples"]]
    med, p90 = statistics.median(lat), percentile(lat, 0.9)
    bb_rt = median_of(bb["samples"], "round_trip")
    moto_rt = median_of(moto["samples"], "round_trip")
    s, m = bb["samples"], moto["samples"]
    cmd = " ".join(COMMAND)
    print(
        f"batchbook service: started in {ms(bb['start_s']):.0f} ms on a fresh temporary state dir; "
        f"compute environment maxvCpus={args.max_vcpus}"
    )
    print(
        f"batchbook latency: {len(lat)} single jobs of `{cmd}` (1 vCPU, 256 MiB) after "
        f"{args.warmup} warm-up jobs, DescribeJobs polled with no sleep: submit->SUCCEEDED "
        f"min {min(lat):.1f} / median {med:.1f} / p90 {p90:.1f} / max {max(lat):.1f} ms"
    )
    print(
        f"  where it goes (medians): SubmitJob call {median_of(s, 'submit'):.1f} ms, then "
        f"{statistics.mean(x['polls'] for x in s):.1f} DescribeJobs polls (mean) of "
        f"{median_of(s, 'describe'):.1f} ms; on the service's clock (1 ms steps): "
        f"created->started {median_of(s, 'queued'):.0f} ms, started->stopped {median_of(s, 'ran'):.0f} ms"
    )
    print(
        f"batchbook describe: an array of {args.children} children of `{cmd}` finished in "
        f"{bb['array_s']:.2f} s; DescribeJobs over them, one call at a time for {args.seconds:g} s"
    )
    print(f"  {per_call(bb)}")
    print(
        "moto server (ThreadedMotoServer, in a process of its own): moto cannot run containers "
        "without docker, so its docker-free Batch is used (POST /moto-api/config "
        "batch.use_docker=false: a job is SUCCEEDED inside SubmitJob, nothing runs); an UNMANAGED "
        "compute environment with a service role made in moto's IAM (MANAGED needs EC2 subnets, "
        "security groups and an instance profile in moto); CreateJobQueue needs state=ENABLED"
    )
    print(
        f"moto round trip (medians over {len(m)} jobs after {args.warmup}): SubmitJob "
        f"{median_of(m, 'submit'):.1f} ms, DescribeJobs {median_of(m, 'describe'):.1f} ms "
        f"(first poll already SUCCEEDED: {all(x['polls'] == 1 for x in m)})"
    )
    print(f"moto describe over an array of {args.children} children:")
    print(f"  {per_call(moto)}")
    print(
        f"latency: submit->SUCCEEDED median {med:.1f} ms (p90 {p90:.1f} ms); "
        f"target <= {TARGET_MS:.0f} ms: {'met' if med <= TARGET_MS else 'NOT met'}"
    )
    print(
        f"describe: {bb['jobs_s']:,.0f} jobs/s ({bb['calls_s']:,.0f} calls/s, {IDS_PER_CALL} ids per "
        f"call); moto server: {moto['jobs_s']:,.0f} jobs/s"
    )
    print(
        f"ratio: describe throughput batchbook/moto = {bb['jobs_s'] / moto['jobs_s']:.1f} x; "
        f"submit+describe round trip moto = {moto_rt:.1f} ms vs batchbook {bb_rt:.1f} ms"
    )


if __name__ == "__main__":
    main()
