"""EventBridge Scheduler on the engine: firings on an injected clock, across a reload, the
missed firings and the catch-up, pause/resume/delete, and what it refuses."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from conftest import Driver, FakeClock

from batchbook.engine import Engine, EngineConfig, Host
from batchbook.errors import Conflict, ScheduleNotFound, ValidationError
from batchbook.validation import sdk_input
from batchbook.vocabulary import SUBMIT_JOB_TARGET

HOUR = 3600
ROLE = "arn:aws:iam::123456789012:role/batchbook-scheduler"


def target(**submit: Any) -> dict[str, Any]:
    request = {"jobName": "nightly", "jobQueue": "q", "jobDefinition": "jd", **submit}
    return {
        "Arn": SUBMIT_JOB_TARGET,
        "RoleArn": ROLE,
        "Input": json.dumps(sdk_input("SubmitJob", request)),
    }


def create(engine: Engine, name: str = "s", expression: str = "rate(1 hour)", **kw: Any) -> None:
    engine.schedules.create_schedule(
        {
            "Name": name,
            "ScheduleExpression": expression,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": target(),
            **kw,
        }
    )


def firings(engine: Engine, name: str = "s") -> dict[str, Any]:
    return engine.schedules.batchbook_schedule_firings({"Name": name})


def job_names(engine: Engine) -> list[str]:
    """Every job the engine holds (the firings' jobs: nothing else submits here)."""
    return [job.spec.name for job in engine.jobs.values() if job.parent is None]


def reloaded(engine: Engine, clock: FakeClock) -> Engine:
    """A new engine on what ``engine`` persisted (as the service's restart loads it)."""
    objects: dict[tuple[str, str], Any] = {}
    for kind, key, data in engine.take_changes().objects:
        objects[(kind, key)] = data
    again = Engine(clock, Host(cpus=2, memory_mib=8192), EngineConfig(min_timeout_seconds=1))
    again.load([(k[0], v) for k, v in objects.items() if v is not None], [])
    return again


def test_a_rate_schedule_fires_each_period_on_time(engine: Engine, clock: FakeClock) -> None:
    start = clock.now
    create(engine)
    assert engine.next_deadline() == start + HOUR * 1000  # the loop wakes then, not before
    clock.advance(HOUR - 1)
    engine.step()
    assert job_names(engine) == []
    clock.advance(1)
    engine.step()
    [fired] = firings(engine)["Fired"]
    assert fired["At"] == start + HOUR * 1000 and not fired["CatchUp"]
    job = engine.describe_jobs({"jobs": [fired["JobId"]]})["jobs"][0]
    assert job["jobName"] == "nightly" and job["jobQueue"].endswith("job-queue/q")
    clock.advance(HOUR)
    engine.step()
    assert [f["At"] for f in firings(engine)["Fired"]] == [
        start + HOUR * 1000,
        start + 2 * HOUR * 1000,
    ]
    assert firings(engine)["NextFiring"] == start + 3 * HOUR * 1000


def test_a_cron_schedule_fires_at_its_utc_times_with_aws_day_numbers(
    engine: Engine, clock: FakeClock
) -> None:
    clock.now = int(dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC).timestamp() * 1000)  # a Tuesday
    create(engine, "weekly", "cron(30 9 ? * 2 *)")  # AWS's 2 is Monday
    at = dt.datetime.fromtimestamp(firings(engine, "weekly")["NextFiring"] / 1000, dt.UTC)
    assert at == dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)
    create(engine, "paris", "cron(0 3 * * ? *)", ScheduleExpressionTimezone="Europe/Paris")
    at = dt.datetime.fromtimestamp(firings(engine, "paris")["NextFiring"] / 1000, dt.UTC)
    assert at == dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)  # 03:00 in Paris, in winter
    create(engine, "second-friday", "cron(0 0 ? * 6#2 *)")  # the number after # is not a day
    at = dt.datetime.fromtimestamp(firings(engine, "second-friday")["NextFiring"] / 1000, dt.UTC)
    assert at == dt.datetime(2026, 12, 11, tzinfo=dt.UTC)
    clock.now = int(dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC).timestamp() * 1000)
    engine.step()
    assert len(firings(engine, "weekly")["Fired"]) == 1


def test_a_busy_loop_still_fires_a_firing_seconds_late(engine: Engine, clock: FakeClock) -> None:
    create(engine)
    clock.advance(HOUR + 30)
    engine.step()
    assert len(firings(engine)["Fired"]) == 1 and firings(engine)["Missed"] == []


def test_firings_missed_while_down_are_listed_not_run(engine: Engine, clock: FakeClock) -> None:
    start = clock.now
    create(engine)
    clock.advance(3 * HOUR + 600)  # down from before the first firing until past the third
    again = reloaded(engine, clock)
    again.step()
    state = firings(again)
    assert state["Missed"] == [start + k * HOUR * 1000 for k in (1, 2, 3)]
    assert state["MissedCount"] == 3 and state["Fired"] == []
    assert job_names(again) == []
    assert state["NextFiring"] == start + 4 * HOUR * 1000  # and on it goes, on time
    clock.now = start + 4 * HOUR * 1000
    again.step()
    assert [f["At"] for f in firings(again)["Fired"]] == [start + 4 * HOUR * 1000]


def test_catch_up_runs_once_for_all_it_missed(engine: Engine, clock: FakeClock) -> None:
    start = clock.now
    create(engine)
    engine.schedules.batchbook_schedule_firings({"Name": "s", "CatchUp": True})
    clock.advance(3 * HOUR + 600)
    again = reloaded(engine, clock)
    again.step()
    state = firings(again)
    assert state["CatchUp"] and state["MissedCount"] == 3
    [catch_up] = state["Fired"]
    assert catch_up["CatchUp"] and catch_up["At"] == start + 3 * HOUR * 1000  # the latest missed
    assert job_names(again) == ["nightly"]
    again.step()
    assert len(firings(again)["Fired"]) == 1  # once, not at every step


def test_a_paused_schedule_does_not_fire_and_resumes_from_now(
    engine: Engine, clock: FakeClock
) -> None:
    create(engine)
    request = engine.schedules.get_schedule({"Name": "s"})
    keep = ("Name", "ScheduleExpression", "FlexibleTimeWindow", "Target")
    engine.schedules.update_schedule({**{k: request[k] for k in keep}, "State": "DISABLED"})
    assert engine.next_deadline() is None
    clock.advance(5 * HOUR)
    engine.step()
    assert firings(engine)["Fired"] == [] and firings(engine)["Missed"] == []
    engine.schedules.update_schedule({**{k: request[k] for k in keep}, "State": "ENABLED"})
    assert firings(engine)["NextFiring"] > clock.now  # paused on purpose: nothing was missed
    clock.advance(HOUR)
    engine.step()
    assert len(firings(engine)["Fired"]) == 1


def test_delete_and_list(engine: Engine, clock: FakeClock) -> None:
    engine.schedules.create_schedule_group({"Name": "batchbook"})
    create(engine, "a", GroupName="batchbook")
    create(engine, "b", GroupName="batchbook", State="DISABLED")
    create(engine, "c")
    listed = engine.schedules.list_schedules({"GroupName": "batchbook"})["Schedules"]
    assert [(s["Name"], s["State"]) for s in listed] == [("a", "ENABLED"), ("b", "DISABLED")]
    assert listed[0]["Target"] == {"Arn": SUBMIT_JOB_TARGET}
    assert listed[0]["Arn"].endswith(":schedule/batchbook/a")
    page = engine.schedules.list_schedules({"MaxResults": 2})
    rest = engine.schedules.list_schedules({"MaxResults": 2, "NextToken": page["NextToken"]})
    assert len(page["Schedules"]) + len(rest["Schedules"]) == 3 and "NextToken" not in rest
    engine.schedules.delete_schedule({"Name": "c"})
    with pytest.raises(ScheduleNotFound, match="Schedule c does not exist"):
        engine.schedules.get_schedule({"Name": "c"})
    engine.schedules.delete_schedule_group({"Name": "batchbook"})  # with its schedules
    assert engine.schedules.list_schedules({})["Schedules"] == []
    assert engine.next_deadline() is None


def test_a_one_time_schedule_can_delete_itself(engine: Engine, clock: FakeClock) -> None:
    when = dt.datetime.fromtimestamp(clock.now / 1000 + 120, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    create(engine, "once", f"at({when})", ActionAfterCompletion="DELETE")
    clock.advance(120)
    engine.step()
    assert job_names(engine) == ["nightly"]
    assert engine.schedules.list_schedules({})["Schedules"] == []


def test_a_refused_submission_is_listed_with_its_firing(engine: Engine, clock: FakeClock) -> None:
    engine.schedules.create_schedule(
        {
            "Name": "s",
            "ScheduleExpression": "rate(1 minute)",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": target(jobQueue="no-such-queue"),
        }
    )
    clock.advance(60)
    engine.step()
    [fired] = firings(engine)["Fired"]
    assert "JobId" not in fired and "no-such-queue" in fired["Error"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ScheduleExpression": "every hour"}, "ScheduleExpression: 'every hour' is not one of"),
        ({"ScheduleExpression": "cron(0 3 * * *)"}, "has 5 fields; cron\\(\\) takes 6"),
        (
            {"ScheduleExpression": "cron(0 3 1 * 2 *)"},
            "exactly one of day-of-month and day-of-week",
        ),
        ({"ScheduleExpression": "cron(0 3 ? * 0 *)"}, "day-of-week 0 is out of range; allowed 1"),
        ({"ScheduleExpression": "rate(0 hours)"}, "the rate must be >= 1"),
        ({"ScheduleExpressionTimezone": "Mars/Base"}, "ScheduleExpressionTimezone: 'Mars/Base'"),
        ({"FlexibleTimeWindow": {"Mode": "FLEXIBLE"}}, "MaximumWindowInMinutes: required"),
        ({"FlexibleTimeWindow": {"Mode": "SOMETIMES"}}, "is not one of OFF, FLEXIBLE"),
        (
            {"Target": {**target(), "Arn": "arn:aws:lambda:us-east-1:1:function:f"}},
            "fires Batch SubmitJob only",
        ),
        ({"Target": {**target(), "Input": "{nope"}}, "Target.Input: not valid JSON"),
        ({"GroupName": "nope"}, "Schedule group nope does not exist"),
        ({"StartDate": 1_000_000}, "StartDate: cannot be earlier than 5 minutes ago"),
        ({"Name": "has space"}, "Name"),
    ],
)
def test_bad_schedules_are_refused_by_name(
    engine: Engine, change: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValidationError, ScheduleNotFound), match=message):
        create(engine, **change)
    assert engine.schedules.list_schedules({})["Schedules"] == []


def test_a_second_schedule_of_the_same_name_conflicts(engine: Engine, driver: Driver) -> None:
    create(engine)
    with pytest.raises(Conflict, match="Schedule s already exists"):
        create(engine, expression="rate(5 minutes)")
    assert engine.schedules.get_schedule({"Name": "s"})["ScheduleExpression"] == "rate(1 hour)"
