"""How many Batch calls the AWS backend makes for a 10,000-input map: its code path, with the
local service standing in for AWS Batch and CloudWatch Logs (AWS_ENDPOINT_URL_BATCH), counted
by operation with a botocore hook. AWS allows roughly 50 requests/s per account for
SubmitJob and DescribeJobs, so a map must be one SubmitJob and each look at it a few calls,
whatever its size.

    python bench/aws_calls.py [--inputs 10000] [--chunksize 50]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path


def double(x: int) -> int:
    return 2 * x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--chunksize", type=int, default=50)
    args = parser.parse_args()

    import batchbook as batch
    from batchbook.aws.resources import Names, SetupOptions, runner_definition
    from batchbook.functions.backend import create_queue
    from batchbook.server.discovery import ensure_service, stop_service

    root = Path(tempfile.mkdtemp(prefix="aws-calls-"))
    os.environ["PATH"] = f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"
    service = ensure_service(root / "state")
    try:
        local = batch.use(state_dir=root / "state")
        create_queue(local.batch, "lab", os.cpu_count() or 2, ce="batchbook")
        store = f"file://{root / 'store'}"
        opts = SetupOptions(region="us-east-1", bucket="unused", name="lab")
        names = Names.of(opts)
        definition = runner_definition(opts, names, {names.job_role: "arn:aws:iam::1:role/x"})
        local.batch.register_job_definition(**definition)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL_BATCH": service.url,
                "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": service.url,
                "AWS_ACCESS_KEY_ID": service.credentials.access_key,
                "AWS_SECRET_ACCESS_KEY": service.credentials.secret_key,
                "BATCHBOOK_AWS_POLL_SECONDS": "0.5",
            }
        )
        with batch.use("aws", region="us-east-1", queue="lab", store=store) as aws:
            calls: collections.Counter[str] = collections.Counter()
            aws.batch.meta.events.register(
                "before-call.batch.*", lambda model, **_: calls.update([model.name])
            )
            started = time.monotonic()
            job = batch.map(double, range(args.inputs), chunksize=args.chunksize)
            submit = dict(calls)
            calls.clear()
            job.snapshot(max_age=0)
            one_snapshot = sum(calls.values())
            calls.clear()
            looks = 0
            while not job.snapshot(max_age=0).final:
                looks += 1
                time.sleep(0.5)
            during = sum(calls.values())
            calls.clear()
            frame = job.to_frame()
            at_end = dict(calls)
            elapsed = time.monotonic() - started
        ok = int((frame["status"] == "SUCCEEDED").sum())
        print(
            f"{args.inputs} inputs in {len(job.chunks)} chunks, {ok} succeeded in {elapsed:.1f} s"
        )
        print(f"submission: {submit}")
        print(f"one snapshot while it ran: {one_snapshot} calls")
        print(f"{looks} snapshots until final: {during} calls ({during / max(looks, 1):.1f} each)")
        print(f"to_frame() at the end: {at_end}")
        print(
            f"ratio: SubmitJob calls for a {args.inputs}-input map {submit.get('SubmitJob', 0)} "
            f"(target 1); Batch calls per snapshot {during / max(looks, 1):.1f} (target O(1), "
            f"not O(chunks={len(job.chunks)}))"
        )
    finally:
        stop_service(root / "state")


if __name__ == "__main__":
    main()
