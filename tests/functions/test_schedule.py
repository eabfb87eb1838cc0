"""batch.schedule on the local engine: a schedule whose firings are ordinary runs (fired by
the service itself, its clock moved on by a restart), missed firings listed after the service
was down, pause/resume/delete from Python and from ``batchbook schedule``, and bad input."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from croniter import croniter

import batchbook as batch
from batchbook.errors import ClientError
from batchbook.expressions import cron_of, parse
from batchbook.functions.backend import Backend, make_current
from batchbook.functions.schedule import forget_unused_templates
from batchbook.server.discovery import stop_service
from batchbook.validation import from_sdk_input
from tests.functions.conftest import until
from tests.server.conftest import start

HOUR = 3600


def square(x: int) -> int:
    return x * x


def hello() -> str:
    return "hello"


def restarted(state: Path, offset: float) -> Backend:
    """The state dir's service stopped and started again with its clock ``offset`` seconds
    ahead (as if it came back that much later), and a backend on it."""
    stop_service(state)
    start(state, "--clock-offset", str(offset))
    return batch.use(state_dir=state)


def templates(backend: Backend, name: str) -> set[str]:
    """The stored templates of schedule ``name``."""
    return {k.split("/")[1] for k, _ in backend.store.list(f"runs/schedule-{name}-")}


def finished_runs(backend: Backend, schedule: batch.Schedule, count: int) -> list[Any]:
    """The schedule's runs once ``count`` of them are final."""

    until(backend, lambda: len(schedule.runs()) >= count)
    return [run.wait(timeout=60, progress=False) for run in schedule.runs()]


def test_each_firing_is_an_ordinary_run(folder_backend: Backend) -> None:
    make_current(folder_backend)  # the module's service (the tests below leave another current)
    s = batch.schedule(square, [1, 2, 3], every="1h", name="squares", chunksize=2)
    try:
        assert s.expression == "rate(1 hour)" and not s.paused
        assert [x.name for x in batch.schedules()] == ["squares"]
        [run] = finished_runs(folder_backend, s, 1)  # every= starts at once, as on AWS
        assert run.to_frame()["result"].tolist() == [1, 4, 9]
        assert run.id == run.job_id and run.name == "squares"
        assert repr(s.refresh()).startswith("Schedule 'squares': every 1h, next ")
        nxt = s.next_firing
        assert nxt is not None and nxt - dt.datetime.now(dt.UTC) > dt.timedelta(minutes=59)
        assert s.missed_count == 0 and "last fired" in repr(s)
        # the target's own SubmitJob, submitted again, is another firing: another run
        target = folder_backend.scheduler.get_schedule(Name="squares", GroupName="batchbook")
        request = from_sdk_input("SubmitJob", json.loads(target["Target"]["Input"]))
        folder_backend.batch.submit_job(**request)
        first, second = finished_runs(folder_backend, s, 2)
        assert first.id == run.id and second.id != run.id
        assert second.to_frame()["result"].tolist() == [1, 4, 9]
        listed = batch.jobs()
        assert set(listed[listed["name"] == "squares"]["run_id"]) == {first.id, second.id}
        assert batch.attach(second.id).to_frame()["status"].tolist() == ["SUCCEEDED"] * 3
    finally:
        s.delete()
    # its runs stay, and so does what they read; cleanup takes both once they are old
    assert batch.attach(first.id).to_frame()["result"].tolist() == [1, 4, 9]
    assert templates(folder_backend, "squares")
    batch.cleanup(older_than=3600)  # not old enough: the template stays too
    assert templates(folder_backend, "squares")
    batch.cleanup(older_than=0)
    assert templates(folder_backend, "squares") == set()


def test_missed_firings_are_listed_and_caught_up_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    start(state)
    try:
        backend = batch.use(state_dir=state)
        plain = batch.schedule(hello, every="1h", name="plain")
        eager = batch.schedule(hello, every="1h", name="eager", catch_up=True)
        finished_runs(backend, plain, 1)  # each fired at once
        finished_runs(backend, eager, 1)
        backend = restarted(state, 3 * HOUR + 600)  # then down across three firings
        plain, eager = batch.schedules()["plain"], batch.schedules()["eager"]
        assert plain.missed_count == 3 and len(plain.missed) == 3 and not plain.catch_up
        assert "missed 3 firing(s) while the service was down" in repr(plain)
        assert len(plain.runs()) == 1
        _, caught_up = finished_runs(backend, eager, 2)
        assert eager.refresh().catch_up and eager.missed_count == 3
        assert "(a catch-up)" in repr(eager) and "caught up once" in repr(eager)
        assert caught_up.to_frame()["result"].tolist() == ["hello"]
    finally:
        stop_service(state)


def test_pause_resume_delete_from_python_and_the_command(tmp_path: Path) -> None:
    state = tmp_path / "state"
    start(state)
    try:
        batch.use(state_dir=state)
        s = batch.schedule(square, [2], cron="30 4 * * 1-5", name="weekdays")
        assert s.expression == "cron(30 4 ? * 2-6 *)"  # AWS counts the days from SUN=1
        when = s.next_firing
        assert when is not None and when.weekday() < 5 and (when.hour, when.minute) == (4, 30)
        assert s.pause().paused and s.next_firing is None and "paused" in repr(s)
        assert s.resume().next_firing == when

        def command(*args: str) -> str:
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
            out = subprocess.run(
                [sys.executable, "-m", "batchbook", "schedule", *args, "--state-dir", str(state)],
                capture_output=True, text=True, timeout=60, env=env,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr
            return out.stdout

        assert "Schedule 'weekdays': cron 30 4 * * 1-5, next " in command("list")
        assert "paused" in command("pause", "weekdays")
        assert batch.schedules()["weekdays"].paused
        assert "next " in command("resume", "weekdays")
        assert "deleted" in command("delete", "weekdays")
        assert batch.schedules() == [] and "no schedules" in command("list")
        missing = subprocess.run(
            [sys.executable, "-m", "batchbook", "schedule", "pause", "nope", "--state-dir", str(state)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert missing.returncode == 1 and "schedule 'nope'" in missing.stderr
    finally:
        stop_service(state)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one of every="),
        ({"every": "1h", "cron": "0 3 * * *"}, "give exactly one of every="),
        ({"every": "soon"}, "every: 'soon' is not a period"),
        ({"every": dt.timedelta(seconds=90)}, "not a whole number of minutes"),
        ({"cron": "0 3 * *"}, "is not a 5-field cron"),
        ({"cron": "0 3 1 * 1"}, "restricts both the day of the month and the day of the week"),
        ({"every": "1h", "name": "has space"}, "name: 'has space' is not a schedule name"),
        ({"every": "1h", "budget": 5}, "budget: not an option of a schedule"),
        ({"every": "1h", "memory": "lots"}, "memory: 'lots' is not"),
    ],
)
def test_bad_schedules_are_refused_and_leave_nothing(
    folder_backend: Backend, kwargs: dict[str, Any], message: str
) -> None:
    make_current(folder_backend)
    with pytest.raises(ClientError, match=message):
        batch.schedule(square, [1], **kwargs)
    assert batch.schedules() == []
    assert not [k for k, _ in folder_backend.store.list("runs/") if k.startswith("runs/schedule-")]


def test_a_taken_name_is_refused_and_the_first_kept(folder_backend: Backend) -> None:
    make_current(folder_backend)
    first = batch.schedule(square, [1], every="2h", name="taken")
    try:
        batch.cleanup(older_than=0)  # a live schedule's template stays
        assert templates(folder_backend, "taken")
        with pytest.raises(ClientError, match="a schedule 'taken' exists already"):
            batch.schedule(square, [1], every="1h", name="taken")
        assert batch.schedules()["taken"].expression == "rate(2 hours)"
        assert len(templates(folder_backend, "taken")) == 1  # the refused one stored nothing
    finally:
        first.delete()


def test_cleanup_never_fails_for_templates_it_cannot_judge(folder_backend: Backend) -> None:
    """A backend whose endpoint has no EventBridge Scheduler (or denies listing schedules):
    cleanup of runs goes on, and every template stays."""
    make_current(folder_backend)
    s = batch.schedule(square, [1], cron="0 3 * * *", name="judged")
    s.delete()
    blind = Backend(folder_backend.batch._client, folder_backend.logs._client, folder_backend.store)
    assert forget_unused_templates(blind, cutoff_ms=time.time() * 1000 + 1) == []
    assert templates(folder_backend, "judged")
    batch.cleanup(older_than=0)  # the backend that can tell: nothing fires or reads it
    assert templates(folder_backend, "judged") == set()


@pytest.mark.parametrize(
    "days",
    ["0-7", "1-7/2", "5-7/2", "5-7", "1-5", "1-5/2", "0", "7", "*/3", "MON-FRI", "L5", "5#2"],
)
def test_cron_days_mean_on_aws_what_they_mean_to_cron(days: str) -> None:
    """The converted expression fires on the very days croniter gives the 5-field one."""
    cron = f"0 0 * * {days}"
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    theirs = croniter(cron, start - dt.timedelta(seconds=1), ret_type=dt.datetime)
    want = [theirs.get_next(dt.datetime) for _ in range(10)]
    rule, at = parse(cron_of(cron)), int(start.timestamp() * 1000) - 1
    got = []
    for _ in range(10):
        at = rule.after(at, 0)
        got.append(dt.datetime.fromtimestamp(at / 1000, dt.UTC))
    assert got == want, cron_of(cron)
