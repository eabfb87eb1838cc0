"""The ``batchbook`` command."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from batchbook.aws.commands import add_commands as add_aws_commands
from batchbook.aws.commands import run as run_aws
from batchbook.home import default_state_dir, home
from batchbook.wording import count


def estimate_pi(samples: int, seed: int) -> float:
    """One Monte Carlo estimate of pi (the demo's function: it runs on the workers)."""
    import random

    rng = random.Random(seed)
    hits = sum(rng.random() ** 2 + rng.random() ** 2 <= 1 for _ in range(samples))
    print(f"seed {seed}: {hits} of {samples} samples inside the circle")
    return 4 * hits / samples  # samples == 0 raises ZeroDivisionError: one input fails on purpose


def demo(state_dir: Path) -> int:
    import batchbook as batch
    from batchbook.server.discovery import find_service, stop_service

    # The demo's own state dir, never emptied: it may hold earlier demo runs, and a service
    # may be using it (one started by the reattach line below is left running).
    started_here = find_service(state_dir) is None
    print(f"batchbook demo: local AWS-Batch-compatible service in {state_dir}")
    batch.use(state_dir=state_dir)
    try:
        grid = [(samples, seed) for samples in (20_000, 200_000) for seed in range(4)] + [(0, 9)]
        started = time.monotonic()
        job = batch.map(
            estimate_pi,
            [s for s, _ in grid],
            [seed for _, seed in grid],
            name=DEMO_NAME,
            memory="256 MiB",
            retries=1,
        )
        print(
            f"submitted {count(len(grid), 'input')} as array job {job.job_id} "
            f"({count(len(job.chunks), 'child', 'children')})"
        )
        job.wait()
        frame = job.to_frame()
        columns = ["input", "result", "status", "error", "attempts", "duration", "job_id"]
        with pd_options():
            print(frame[columns].to_string())
        good = frame[frame["status"] == "SUCCEEDED"]["result"]
        failed = len(frame) - len(good)
        print(
            f"\npi ~ {good.mean():.4f} from {count(len(good), 'estimate')}; "
            f"{count(failed, 'input')} failed"
        )
        print(f"logs of input 0: {job.logs(0)}")
        print(f"done in {time.monotonic() - started:.2f} s")
        print(f"\nreattach from any Python, later:\n    {reattach_line(state_dir)}")
        return 0 if failed == 1 else 1
    finally:
        if started_here:
            stop_service(state_dir)


DEMO_NAME = "monte-carlo-pi"
WORKER_MODULE = "batchbook.functions.worker"  # what every chunk of a map runs


def reattach_line(state_dir: Path) -> str:
    """Python that gives the demo's last map back, in any new process."""
    return (
        f"import batchbook as batch; batch.use(state_dir={str(state_dir)!r}); "
        f"job = batch.attach({DEMO_NAME!r})"
    )


def pd_options() -> Any:
    import pandas as pd

    return pd.option_context("display.width", 160, "display.max_colwidth", 48)


def serve(args: argparse.Namespace) -> int:
    if args.ready_fd is not None and os.fork():
        # Started by a client (discovery): the service runs on in a grandchild, which is
        # nobody's child but init's, so no client is left holding a zombie after it stops.
        os._exit(0)
    from batchbook.errors import StateDirInUse, UnsafeStateDir
    from batchbook.server.service import run_service

    if args.max_log_stream_mib < 1:
        print("batchbook serve: --max-log-stream-mib: give 1 MiB or more", file=sys.stderr)
        return 2
    try:
        return run_service(
            args.state_dir,
            port=args.port,
            throttle_rps=args.throttle,
            ready_fd=args.ready_fd,
            min_timeout_seconds=args.min_timeout,
            min_state_limit_seconds=args.min_state_limit,
            preload=tuple(filter(None, args.preload.split(","))),
            max_log_stream_mib=args.max_log_stream_mib,
            clock_offset_seconds=args.clock_offset,
        )
    except (StateDirInUse, UnsafeStateDir, OSError) as e:
        print(f"batchbook serve: {e}", file=sys.stderr)
        return 1


def status(args: argparse.Namespace) -> int:
    from batchbook.server.discovery import find_service

    service = find_service(args.state_dir)
    if service is None:
        print(f"no batchbook service is running for {args.state_dir}")
        print(
            "It starts by itself on the first batch.map (or batchbook.server.discovery."
            "ensure_service()) and then keeps running; to run it in this terminal instead:\n"
            f"    batchbook serve --state-dir {args.state_dir}"
        )
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


def cleanup(args: argparse.Namespace) -> int:
    import batchbook as batch
    from batchbook.errors import ClientError

    try:
        with batch.use(state_dir=args.state_dir) as backend:
            print(f"{args.state_dir}: {batch.cleanup(args.older_than, backend)!r}")
    except ClientError as e:
        print(f"batchbook cleanup: {e}", file=sys.stderr)
        return 2
    return 0


def why(args: argparse.Namespace) -> int:
    """``batchbook why JOB``: why a job (an id, or a map's run id or name) is where it is."""
    import batchbook as batch
    from batchbook.errors import BatchbookError
    from batchbook.functions.diagnosis import diagnose

    try:
        with _backend(args) as backend:
            job_id = args.job
            if not backend.describe([job_id]):  # not a job id: a run id or a map's name
                job_id = batch.attach(args.job, backend).job_id
            print(repr(diagnose(backend, job_id)))
    except BatchbookError as e:
        print(f"batchbook why: {e}", file=sys.stderr)
        return 2
    return 0


def schedule(args: argparse.Namespace) -> int:
    """``batchbook schedule list|pause|resume|delete [NAME]``: the batch.schedule ones."""
    import batchbook as batch
    from batchbook.errors import BatchbookError

    try:
        with _backend(args) as backend:
            found = batch.schedules(backend)
            if args.action == "list":
                print(repr(found))
                return 0
            if not args.name:
                print(
                    f"batchbook schedule {args.action}: give the schedule's name", file=sys.stderr
                )
                return 2
            chosen = found[args.name]
            if args.action == "delete":
                chosen.delete()
                print(f"schedule {args.name!r} deleted; its runs stay (batch.jobs())")
            else:
                print(repr(chosen.pause() if args.action == "pause" else chosen.resume()))
    except BatchbookError as e:
        print(f"batchbook schedule: {e}", file=sys.stderr)
        return 1
    return 0


def _backend(args: argparse.Namespace) -> Any:
    """The backend a command's ``--aws``, ``--profile`` and ``--state-dir`` name."""
    import batchbook as batch

    if args.aws:
        return batch.use("aws", profile=args.profile)
    return batch.use(state_dir=args.state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="batchbook", description="Run Python on AWS Batch, or on this machine."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser(
        "demo", help="run an example array job on the local engine and show the result"
    )
    p_demo.add_argument("--state-dir", type=Path, default=home() / "demo")
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
    p_serve.add_argument(
        "--min-state-limit",
        type=int,
        default=600,
        metavar="SECONDS",
        help="smallest jobStateTimeLimitActions maxTimeSeconds accepted (AWS: 600)",
    )
    p_serve.add_argument(
        "--preload",
        default=WORKER_MODULE,
        metavar="MODULE,...",
        help="modules the fork server loads before the first python -m attempt (default: "
        "batchbook's map worker)",
    )
    p_serve.add_argument(
        "--max-log-stream-mib",
        type=int,
        default=1024,
        metavar="MIB",
        help="what one attempt's log stream may hold; past it, a note and the rest dropped "
        "(default 1024)",
    )
    p_serve.add_argument(
        "--clock-offset",
        type=float,
        default=0,
        metavar="SECONDS",
        help="run the engine's clock this far ahead of this machine's (a rehearsal of a "
        "service that comes back after a long time down: its schedules' missed firings); "
        "on a scratch state dir only: the times it writes stay ahead",
    )
    p_serve.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    for name, text in (
        ("status", "show the running service and how to reach it"),
        ("stop", "stop the running service"),
    ):
        sub.add_parser(name, help=text).add_argument("--state-dir", **state_dir)  # type: ignore[arg-type]
    p_cleanup = sub.add_parser(
        "cleanup", help="remove finished runs' functions, inputs and results from the store"
    )
    p_cleanup.add_argument("--state-dir", **state_dir)  # type: ignore[arg-type]
    p_cleanup.add_argument(
        "--older-than", default="7d", metavar="AGE", help="e.g. 7d, 12h, 30m (default: 7d)"
    )
    p_why = sub.add_parser("why", help="why a job waits (or ended), in plain words")
    p_why.add_argument("job", help="a job id, or a map's run id or name")
    p_schedule = sub.add_parser("schedule", help="list, pause, resume or delete schedules")
    p_schedule.add_argument("action", choices=["list", "pause", "resume", "delete"])
    p_schedule.add_argument("name", nargs="?", help="the schedule's name (batch.schedule name=)")
    for p in (p_why, p_schedule):
        p.add_argument("--state-dir", **state_dir)  # type: ignore[arg-type]
        p.add_argument("--aws", action="store_true", help="on AWS (the configured profile)")
        p.add_argument("--profile", default=None, help="batchbook config profile (with --aws)")
    add_aws_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.state_dir)
    commands = {
        "serve": serve,
        "status": status,
        "stop": stop,
        "cleanup": cleanup,
        "why": why,
        "schedule": schedule,
        "aws": run_aws,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
