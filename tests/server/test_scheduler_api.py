"""EventBridge Scheduler on the local service, through real boto3: a schedule fires its
SubmitJob on time, survives a restart, lists what it missed while the service was down, and
catches up once when asked; bad requests get Scheduler's own errors."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError as BotoClientError
from conftest import checked_client, make_jobdef, make_queue, start, wait_jobs

from batchbook.server.discovery import Service, stop_service
from batchbook.validation import sdk_input

TARGET = "arn:aws:scheduler:::aws-sdk:batch:submitJob"
ROLE = "arn:aws:iam::123456789012:role/batchbook-scheduler"
HOUR = 3600


def target(code_job: str = "from-schedule") -> dict[str, Any]:
    submit = {"jobName": code_job, "jobQueue": "q", "jobDefinition": "py", "tags": {"k": "v"}}
    return {"Arn": TARGET, "RoleArn": ROLE, "Input": json.dumps(sdk_input("SubmitJob", submit))}


def firings_after(service: Service, name: str, count: int, timeout: float = 30) -> dict[str, Any]:
    """The schedule's firings once it has ``count`` of them, woken by the service's changes."""
    version = 0
    deadline = time.monotonic() + timeout
    while True:
        state = service.schedule_firings(name, "default")
        if len(state["Fired"]) >= count or time.monotonic() > deadline:
            return state
        version = service.wait_for_change(version, 5)


def test_a_schedule_fires_its_submit_job_on_time(service: Service, batch: Any) -> None:
    make_queue(batch)
    make_jobdef(batch)
    scheduler = checked_client(service, "scheduler")
    when = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
    arn = scheduler.create_schedule(
        Name="soon",
        ScheduleExpression=f"at({when:%Y-%m-%dT%H:%M:%S})",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target(),
    )["ScheduleArn"]
    assert arn.endswith(":schedule/default/soon")
    got = scheduler.get_schedule(Name="soon")
    assert got["State"] == "ENABLED" and got["Target"]["Arn"] == TARGET
    assert got["ScheduleExpressionTimezone"] == "UTC"
    [fired] = firings_after(service, "soon", 1)["Fired"]
    assert fired["At"] == int(when.timestamp() * 1000) and not fired["CatchUp"]
    [job] = wait_jobs(batch, [fired["JobId"]])
    assert job["jobName"] == "from-schedule" and job["status"] == "SUCCEEDED"
    assert job["tags"] == {"k": "v"}
    assert job["createdAt"] >= fired["At"]


def test_schedules_survive_a_restart_and_list_what_they_missed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    service = start(state)
    try:
        batch = checked_client(service)
        make_queue(batch)
        make_jobdef(batch)
        scheduler = checked_client(service, "scheduler")
        scheduler.create_schedule_group(Name="batchbook")
        common = {"FlexibleTimeWindow": {"Mode": "OFF"}, "Target": target()}
        scheduler.create_schedule(Name="plain", ScheduleExpression="rate(1 hour)", **common)
        scheduler.create_schedule(Name="eager", ScheduleExpression="rate(1 hour)", **common)
        service.schedule_firings("eager", "default", catch_up=True)
        plain = firings_after(service, "plain", 1)  # a rate starts at once
        firings_after(service, "eager", 1)
        created = plain["NextFiring"] - HOUR * 1000
        assert plain["Fired"][0]["At"] == created
    finally:
        stop_service(state)
    # back three hours and ten minutes later (the engine's clock, injected): three missed
    service = start(state, "--clock-offset", str(3 * HOUR + 600))
    try:
        scheduler = checked_client(service, "scheduler")
        names = [s["Name"] for s in scheduler.list_schedules()["Schedules"]]
        assert names == ["eager", "plain"]
        assert scheduler.get_schedule_group(Name="batchbook")["State"] == "ACTIVE"
        plain = service.schedule_firings("plain", "default")  # as the restart left it
        assert plain["MissedCount"] == 3 and [f["At"] for f in plain["Fired"]] == [created]
        assert [at - created for at in plain["Missed"]] == [HOUR * 1000 * k for k in (1, 2, 3)]
        assert plain["NextFiring"] == created + 4 * HOUR * 1000
        eager = service.schedule_firings("eager", "default")
        first, catch_up = eager["Fired"]  # at its creation, then once for the three it missed
        assert catch_up["CatchUp"] and not first["CatchUp"] and eager["MissedCount"] == 3
        batch = checked_client(service)
        fired = [plain["Fired"][0]["JobId"], first["JobId"], catch_up["JobId"]]
        assert all(j["status"] == "SUCCEEDED" for j in wait_jobs(batch, fired))
        listed = batch.list_jobs(jobQueue="q", jobStatus="SUCCEEDED")["jobSummaryList"]
        assert sorted(j["jobId"] for j in listed) == sorted(fired)  # no job for a missed one
    finally:
        stop_service(state)


def test_pause_resume_delete_and_schedulers_errors(service: Service) -> None:
    scheduler = checked_client(service, "scheduler")
    common = {"FlexibleTimeWindow": {"Mode": "OFF"}, "Target": target()}
    got_arn = scheduler.create_schedule(Name="s", ScheduleExpression="cron(0 3 * * ? *)", **common)[
        "ScheduleArn"
    ]
    scheduler.update_schedule(
        Name="s", ScheduleExpression="cron(0 3 * * ? *)", State="DISABLED", **common
    )
    assert scheduler.get_schedule(Name="s")["State"] == "DISABLED"
    assert service.schedule_firings("s", "default")["NextFiring"] is None
    listed = scheduler.list_schedules(State="DISABLED")["Schedules"]
    assert [s["Name"] for s in listed] == ["s"]
    scheduler.update_schedule(Name="s", ScheduleExpression="cron(0 3 * * ? *)", **common)
    at = service.schedule_firings("s", "default")["NextFiring"]
    assert dt.datetime.fromtimestamp(at / 1000, dt.UTC).strftime("%H:%M") == "03:00"
    with pytest.raises(BotoClientError) as e:
        scheduler.create_schedule(Name="s", ScheduleExpression="rate(1 hour)", **common)
    assert e.value.response["Error"]["Code"] == "ConflictException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(BotoClientError) as e:
        scheduler.create_schedule(Name="t", ScheduleExpression="every day", **common)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "ScheduleExpression: 'every day'" in e.value.response["Error"]["Message"]
    with pytest.raises(BotoClientError) as e:  # its tags: said to be unsupported, by name
        scheduler.list_tags_for_resource(ResourceArn=got_arn)
    assert "tags (ListTagsForResource, TagResource, UntagResource) are not kept" in str(e.value)
    scheduler.delete_schedule(Name="s")
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException) as e:
        scheduler.get_schedule(Name="s")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert scheduler.list_schedules()["Schedules"] == []
