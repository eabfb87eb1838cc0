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
from batchbook.expressions import COUNTED
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
    changes = engine.take_changes()
    for kind, key, data in changes.objects:
        objects[(kind, key)] = data
    jobs = sorted(((j.id, j.to_record()) for j in changes.jobs), key=lambda kv: ":" in kv[0])
    again = Engine(clock, Host(cpus=2, memory_mib=8192), EngineConfig(min_timeout_seconds=1))
    again.load([(k[0], v) for k, v in objects.items() if v is not None], jobs)
    return again


def test_a_rate_schedule_fires_at_once_then_each_period(engine: Engine, clock: FakeClock) -> None:
    start = clock.now
    create(engine)
    assert engine.next_deadline() == start  # AWS starts a rate schedule without StartDate at once
    engine.step()
    [fired] = firings(engine)["Fired"]
    assert fired["At"] == start and not fired["CatchUp"]
    job = engine.describe_jobs({"jobs": [fired["JobId"]]})["jobs"][0]
    assert job["jobName"] == "nightly" and job["jobQueue"].endswith("job-queue/q")
    assert engine.next_deadline() == start + HOUR * 1000  # the loop wakes then, not before
    clock.advance(HOUR - 1)
    engine.step()
    assert len(firings(engine)["Fired"]) == 1
    clock.advance(1)
    engine.step()
    assert [f["At"] for f in firings(engine)["Fired"]] == [start, start + HOUR * 1000]
    assert firings(engine)["NextFiring"] == start + 2 * HOUR * 1000


def test_a_start_date_is_a_rates_first_firing(engine: Engine, clock: FakeClock) -> None:
    begin = clock.now + 600_000
    create(engine, StartDate=begin / 1000, EndDate=(begin + 2 * HOUR * 1000) / 1000)
    assert firings(engine)["NextFiring"] == begin
    for _ in range(4):
        clock.now = firings(engine)["NextFiring"] or clock.now + HOUR * 1000
        engine.step()
    at = [f["At"] for f in firings(engine)["Fired"]]
    assert at == [begin, begin + HOUR * 1000, begin + 2 * HOUR * 1000]  # none past EndDate
    assert firings(engine)["NextFiring"] is None


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
    engine.step()
    clock.advance(HOUR + 30)
    engine.step()
    assert len(firings(engine)["Fired"]) == 2 and firings(engine)["Missed"] == []


def test_firings_missed_while_down_are_listed_not_run(engine: Engine, clock: FakeClock) -> None:
    start = clock.now
    create(engine)
    engine.step()  # the first firing, at once
    clock.advance(3 * HOUR + 600)  # down from then until past the fourth
    again = reloaded(engine, clock)
    again.step()
    state = firings(again)
    assert state["Missed"] == [start + k * HOUR * 1000 for k in (1, 2, 3)]
    assert state["MissedCount"] == 3 and [f["At"] for f in state["Fired"]] == [start]
    assert job_names(again) == ["nightly"]  # the first firing's, and none for the missed
    assert state["NextFiring"] == start + 4 * HOUR * 1000  # and on it goes, on time
    clock.now = start + 4 * HOUR * 1000
    again.step()
    assert [f["At"] for f in firings(again)["Fired"]] == [start, start + 4 * HOUR * 1000]


def test_catch_up_runs_once_for_all_it_missed(engine: Engine, clock: FakeClock) -> None:
    start = clock.now
    create(engine)
    engine.schedules.batchbook_schedule_firings({"Name": "s", "CatchUp": True})
    engine.step()
    clock.advance(3 * HOUR + 600)
    again = reloaded(engine, clock)
    again.step()
    state = firings(again)
    assert state["CatchUp"] and state["MissedCount"] == 3
    first, catch_up = state["Fired"]
    assert first["At"] == start and not first["CatchUp"]
    assert catch_up["CatchUp"] and catch_up["At"] == start + 3 * HOUR * 1000  # the latest missed
    assert job_names(again) == ["nightly", "nightly"]
    again.step()
    assert len(firings(again)["Fired"]) == 2  # once, not at every step


def test_a_paused_schedule_does_not_fire_and_resumes_from_now(
    engine: Engine, clock: FakeClock
) -> None:
    start = clock.now
    create(engine)
    request = engine.schedules.get_schedule({"Name": "s"})
    keep = ("Name", "ScheduleExpression", "FlexibleTimeWindow", "Target")
    engine.schedules.update_schedule({**{k: request[k] for k in keep}, "State": "DISABLED"})
    assert engine.next_deadline() is None
    clock.advance(5 * HOUR + 60)
    engine.step()
    assert firings(engine)["Fired"] == [] and firings(engine)["Missed"] == []
    engine.schedules.update_schedule({**{k: request[k] for k in keep}, "State": "ENABLED"})
    # paused on purpose: nothing was missed, and the periods go on from its creation
    assert firings(engine)["NextFiring"] == start + 6 * HOUR * 1000
    clock.advance(HOUR)
    engine.step()
    assert [f["At"] for f in firings(engine)["Fired"]] == [start + 6 * HOUR * 1000]


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
        ({"Name": "has space"}, "Name: 'has space' may hold only letters, digits"),
        ({"ScheduleExpression": "cron(0 0 31 2 ? *)"}, "names no time from now on"),
        ({"ScheduleExpression": "cron(0 0 * * ? 2020)"}, "names no time from now on"),
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


def test_a_refused_update_changes_nothing(engine: Engine, clock: FakeClock) -> None:
    create(engine)
    engine.step()
    before = firings(engine)["NextFiring"]
    request = engine.schedules.get_schedule({"Name": "s"})
    keep = ("Name", "FlexibleTimeWindow", "Target")
    with pytest.raises(ValidationError, match="names no time from now on"):
        engine.schedules.update_schedule(
            {**{k: request[k] for k in keep}, "ScheduleExpression": "cron(0 0 31 2 ? *)"}
        )
    assert engine.schedules.get_schedule({"Name": "s"})["ScheduleExpression"] == "rate(1 hour)"
    assert firings(engine)["NextFiring"] == before
    clock.advance(HOUR)
    engine.step()  # and the old rule still steps
    assert len(firings(engine)["Fired"]) == 2


def test_a_retried_create_with_its_client_token_is_the_same_schedule(engine: Engine) -> None:
    create(engine, ClientToken="token-1")
    create(engine, ClientToken="token-1")  # the reply was lost; botocore sends it again
    with pytest.raises(Conflict):
        create(engine, ClientToken="token-2")
    assert len(engine.schedules.list_schedules({})["Schedules"]) == 1


def utc(ms: int | None) -> str:
    assert ms is not None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%m-%d %H:%M")


def steps(engine: Engine, clock: FakeClock, name: str, count: int) -> list[str]:
    """The schedule's next ``count`` firings (UTC), the clock moved to each in turn."""
    out = []
    for _ in range(count):
        clock.now = firings(engine, name)["NextFiring"]
        out.append(utc(clock.now))
        engine.step()
    return out


def test_daylight_saving_time_skips_a_missing_time_and_repeats_none(
    engine: Engine, clock: FakeClock
) -> None:
    # Europe/Paris: clocks go forward at 02:00 on 29 March 2026, back at 03:00 on 25 October
    clock.now = int(dt.datetime(2026, 3, 28, 12, tzinfo=dt.UTC).timestamp() * 1000)
    paris = {"ScheduleExpressionTimezone": "Europe/Paris"}
    create(engine, "spring", "cron(30 2 * * ? *)", **paris)
    assert steps(engine, clock, "spring", 2) == ["03-30 00:30", "03-31 00:30"]  # 29th: none
    clock.now = int(dt.datetime(2026, 10, 24, 22, 30, tzinfo=dt.UTC).timestamp() * 1000)
    create(engine, "autumn", "cron(30 2 * * ? *)", **paris)
    assert steps(engine, clock, "autumn", 2) == ["10-25 00:30", "10-26 01:30"]  # once, not twice


def test_hourly_through_the_repeated_hour_fires_once_an_hour(
    engine: Engine, clock: FakeClock
) -> None:
    clock.now = int(dt.datetime(2026, 10, 24, 22, 30, tzinfo=dt.UTC).timestamp() * 1000)
    create(engine, "hourly", "cron(0 * * * ? *)", ScheduleExpressionTimezone="Europe/Paris")
    # 01:00 and 02:00 CEST, then 03:00 CET: the 02:00 the clocks repeat fires once
    assert steps(engine, clock, "hourly", 3) == ["10-24 23:00", "10-25 00:00", "10-25 02:00"]


@pytest.mark.parametrize(
    ("expression", "first", "second"),
    [
        ("cron(0 * * * ? 2027)", "01-01 00:00", "01-01 01:00"),  # years skipped, not months
        ("cron(0 0 ? * 6L *)", "12-25 00:00", "01-29 00:00"),  # the last Friday
        ("cron(0 0 ? * 6#2 *)", "12-11 00:00", "01-08 00:00"),  # the second Friday
        ("cron(0 0 ? * 1/2 *)", "12-01 00:00", "12-03 00:00"),  # SUN, TUE, THU, SAT: a step
        ("cron(0 9 ? * MON-FRI *)", "12-01 09:00", "12-02 09:00"),
    ],
)
def test_cron_fields_as_aws_reads_them(
    engine: Engine, clock: FakeClock, expression: str, first: str, second: str
) -> None:
    clock.now = int(dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp() * 1000)  # a Tuesday
    create(engine, "c", expression)
    assert steps(engine, clock, "c", 2) == [first, second]


def test_a_long_time_down_is_counted_not_stepped_through(engine: Engine, clock: FakeClock) -> None:
    start = clock.now
    create(engine, "minutely", "rate(1 minute)")
    create(engine, "cron", "cron(* * * * ? *)")
    for name in ("minutely", "cron"):
        engine.schedules.batchbook_schedule_firings({"Name": name, "CatchUp": True})
    engine.step()
    clock.advance(30 * 86400 + 30)  # thirty days down; back within a minute of a firing
    again = reloaded(engine, clock)
    again.step()
    rate = firings(again, "minutely")
    assert rate["MissedCount"] == 30 * 1440 - 1 and not rate["MissedCountIsFloor"]  # exact
    assert rate["Missed"][-1] == start + (30 * 1440 - 1) * 60_000 and len(rate["Missed"]) == 100
    assert [f["CatchUp"] for f in rate["Fired"]] == [False, False]  # the latest was on time
    cron = firings(again, "cron")
    assert cron["MissedCount"] == COUNTED and cron["MissedCountIsFloor"]  # counted so far
    assert [f["CatchUp"] for f in cron["Fired"]] == [False]  # its first minute came after
    for state in (rate, cron):
        assert state["NextFiring"] > clock.now - 60_000
    again.step()
    assert len(firings(again, "minutely")["Fired"]) == 2  # nothing more until it is due
