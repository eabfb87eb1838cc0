"""How promptly the local service fires a schedule: the lateness of each firing's job.

Starts the service of a fresh temporary state dir and creates ``--schedules`` one-time
EventBridge Scheduler schedules (``at(...)``, one per second from 2 s ahead), each targeting
SubmitJob of a trivial job. A firing's lateness is its job's ``createdAt`` minus the time
its schedule named. The peer, in the same run, is what people write without a scheduler: a
``threading.Timer`` per firing that calls SubmitJob through boto3 at the same times, on the
same service (the CloudWatch-rule-and-Lambda pattern, on one machine). Target: the service's
median lateness within 1 s (AWS itself promises a firing within the minute).

    python bench/schedules.py [--quick] [--schedules 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from batchbook.functions.backend import create_queue
from batchbook.server.discovery import ensure_service, stop_service
from batchbook.validation import sdk_input
from batchbook.vocabulary import SUBMIT_JOB_TARGET

TARGET_MS = 1000.0
ROLE = "arn:aws:iam::123456789012:role/bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 schedules")
    parser.add_argument("--schedules", type=int, default=10)
    args = parser.parse_args()
    count = 5 if args.quick else args.schedules
    state = Path(tempfile.mkdtemp(prefix="bench-schedules-")) / "state"
    service = ensure_service(state)
    try:
        batch, scheduler = service.client("batch"), service.client("scheduler")
        create_queue(batch, "q", 2)
        batch.register_job_definition(
            jobDefinitionName="noop",
            type="container",
            containerProperties={
                "image": "python:3.11",
                "command": ["python", "-c", "pass"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "256"},
                ],
            },
        )
        start = int(time.time()) + 2
        times = [start + i for i in range(count)]
        request = {"jobQueue": "q", "jobDefinition": "noop"}
        for i, at in enumerate(times):
            submit = {**request, "jobName": f"scheduled-{i}"}
            scheduler.create_schedule(
                Name=f"s{i}",
                ScheduleExpression=f"at({time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(at))})",
                FlexibleTimeWindow={"Mode": "OFF"},
                Target={
                    "Arn": SUBMIT_JOB_TARGET,
                    "RoleArn": ROLE,
                    "Input": json.dumps(sdk_input("SubmitJob", submit)),
                },
            )
        peer_ids: list[str] = []
        timers = [
            threading.Timer(
                at - time.time(),
                lambda i=i: peer_ids.append(
                    batch.submit_job(**request, jobName=f"timer-{i}")["jobId"]
                ),
            )
            for i, at in enumerate(times)
        ]
        for t in timers:
            t.start()
        for t in timers:
            t.join()
        version, fired = 0, []
        deadline = time.monotonic() + 30
        while len(fired) < count and time.monotonic() < deadline:
            fired = [f for i in range(count) for f in _fired(service, f"s{i}")]
            version = service.wait_for_change(version, 2)
        ours = _lateness(batch, [f["JobId"] for f in fired], times)
        theirs = _lateness(batch, peer_ids, times)
    finally:
        stop_service(state)
        shutil.rmtree(state.parent, ignore_errors=True)
    mine, peer = statistics.median(ours), statistics.median(theirs)
    print(f"firings: {len(ours)} of {count}; lateness ms, service {sorted(ours)}")
    print(f"                      timer   {sorted(theirs)}")
    met = "met" if mine <= TARGET_MS and len(ours) == count else "NOT met"
    print(
        f"ratio: firing lateness median service/timer = {mine / max(peer, 1):.1f} x "
        f"(service {mine:.0f} ms, timer {peer:.0f} ms); target <= {TARGET_MS:.0f} ms: {met}"
    )


def _fired(service: Any, name: str) -> list[dict[str, Any]]:
    return [f for f in service.schedule_firings(name, "default")["Fired"] if "JobId" in f]


def _lateness(batch: Any, job_ids: list[str], times: list[int]) -> list[float]:
    """Each job's createdAt minus the time it was due (by its name's index)."""
    jobs = batch.describe_jobs(jobs=job_ids)["jobs"] if job_ids else []
    return [j["createdAt"] - times[int(j["jobName"].rsplit("-", 1)[1])] * 1000 for j in jobs]


if __name__ == "__main__":
    main()
