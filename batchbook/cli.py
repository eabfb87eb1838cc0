"""The ``batchbook`` command."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from batchbook.runtime.local import LocalBatch, create_queue, default_state_dir

DEMO_CHILD = r"""
import os, random, sys
index = int(os.environ["AWS_BATCH_JOB_ARRAY_INDEX"])
attempt = int(os.environ["AWS_BATCH_JOB_ATTEMPT"])
if index == 3 and attempt == 1:
    print(f"child {index}: simulated crash on attempt {attempt}", file=sys.stderr)
    sys.exit(3)
rng = random.Random(index)
n = 200_000
hits = sum(rng.random() ** 2 + rng.random() ** 2 <= 1 for _ in range(n))
print(f"child {index}: pi ~ {4 * hits / n:.4f} from {n} samples (attempt {attempt})")
"""

DEMO_SUMMARY = "print('summary: every Monte Carlo child finished; this job ran after all of them')"


def demo(state_dir: Path) -> int:
    shutil.rmtree(state_dir, ignore_errors=True)
    print(f"batchbook demo: local AWS-Batch-compatible engine in {state_dir}")
    with LocalBatch(state_dir) as lb:
        create_queue(lb, "demo", max_vcpus=2)
        lb.register_job_definition(
            jobDefinitionName="demo-python",
            type="container",
            containerProperties={
                "image": "python:3.11-slim",
                "command": ["python", "-c", DEMO_CHILD],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "512"},
                ],
            },
            retryStrategy={
                "attempts": 2,
                "evaluateOnExit": [{"onExitCode": "3", "action": "RETRY"}],
            },
        )
        array = lb.submit_job(
            jobName="monte-carlo",
            jobQueue="demo",
            jobDefinition="demo-python",
            arrayProperties={"size": 6},
        )["jobId"]
        summary = lb.submit_job(
            jobName="summary",
            jobQueue="demo",
            jobDefinition="demo-python",
            dependsOn=[{"jobId": array}],
            containerOverrides={"command": ["python", "-c", DEMO_SUMMARY]},
        )["jobId"]
        print(f"submitted array job {array} (6 children, 2 vCPUs) and dependent job {summary}")
        started = time.monotonic()
        lb.wait([summary], timeout=120)
        ids = [f"{array}:{i}" for i in range(6)] + [array, summary]
        jobs = lb.describe_jobs(jobs=ids)["jobs"]
        print(render_table(lb, jobs))
        print(f"done in {time.monotonic() - started:.2f} s; state kept in {state_dir}")
        parent = next(j for j in jobs if j["jobId"] == array)
        return 0 if parent["status"] == "SUCCEEDED" else 1


def render_table(lb: LocalBatch, jobs: list[dict[str, Any]]) -> str:
    rows = [("job", "status", "attempts", "exit codes", "seconds", "last log line")]
    for job in jobs:
        name = job["jobName"] + (
            f"[{job['arrayProperties']['index']}]"
            if "index" in job.get("arrayProperties", {})
            else ""
        )
        if "statusSummary" in job.get("arrayProperties", {}):
            name += " (array parent)"
        codes = ",".join(str(a["container"].get("exitCode", "-")) for a in job["attempts"])
        seconds = (
            f"{(job['stoppedAt'] - job['startedAt']) / 1000:.2f}"
            if job.get("startedAt") and job.get("stoppedAt")
            else ""
        )
        last = ""
        if job["attempts"]:
            events = lb.log_events(job["attempts"][-1]["container"]["logStreamName"])
            last = events[-1][1] if events else ""
        rows.append((name, job["status"], str(len(job["attempts"])), codes, seconds, last[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def serve(args: argparse.Namespace) -> int:
    if args.ready_fd is not None and os.fork():
        # Started by a client (discovery): the service runs on in a grandchild, which is
        # nobody's child but init's, so no client is left holding a zombie after it stops.
        os._exit(0)
    from batchbook.errors import StateDirInUse
    from batchbook.server.service import run_service

    try:
        return run_service(
            args.state_dir,
            port=args.port,
            throttle_rps=args.throttle,
            ready_fd=args.ready_fd,
            min_timeout_seconds=args.min_timeout,
        )
    except (StateDirInUse, OSError) as e:
        print(f"batchbook serve: {e}", file=sys.stderr)
        return 1


def status(args: argparse.Namespace) -> int:
    from batchbook.server.discovery import find_service

    service = find_service(args.state_dir)
    if service is None:
        print(f"no batchbook service is running for {args.state_dir}")
        return 1
    print(f"batchbook service {service.url} (pid {service.pid}) on {service.state_dir}")
    print("\nTo use it from the AWS CLI or boto3, add this to ~/.aws/config:\n")
    print(service.profile())
    print("\nor export:\n")
    print("\n".join(f"export {k}={v}" for k, v in service.environment().items()))
    return 0


def stop(args: argparse.Namespace) -> int:
    from batchbook.server.discovery import stop_service

    if stop_service(args.state_dir):
        print(f"stopped the batchbook service of {args.state_dir}")
        return 0
    print(f"no batchbook service is running for {args.state_dir}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="batchbook", description="Run Python on AWS Batch, or on this machine."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser(
        "demo", help="run an example array job on the local engine and show the result"
    )
    p_demo.add_argument("--state-dir", type=Path, default=default_state_dir().parent / "demo")
    state_dir = {"type": Path, "default": default_state_dir(), "help": "engine state directory"}
    p_serve = sub.add_parser("serve", help="run the local Batch + CloudWatch Logs service")
    p_serve.add_argument("--state-dir", **state_dir)  # type: ignore[arg-type]
    p_serve.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    p_serve.add_argument(
        "--throttle",
        type=float,
        default=0,
        metavar="RPS",
        help="answer TooManyRequestsException above this many requests/s (0: never)",
    )
    p_serve.add_argument(
        "--min-timeout",
        type=int,
        default=60,
        metavar="SECONDS",
        help="smallest attemptDurationSeconds accepted (AWS: 60)",
    )
    p_serve.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    for name, text in (
        ("status", "show the running service and how to reach it"),
        ("stop", "stop the running service"),
    ):
        sub.add_parser(name, help=text).add_argument("--state-dir", **state_dir)  # type: ignore[arg-type]
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.state_dir)
    return {"serve": serve, "status": status, "stop": stop}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
