"""EventBridge Scheduler on the local engine: schedule groups, schedules, and their firings.

A schedule's target is Batch's SubmitJob through the universal target
(``arn:aws:scheduler:::aws-sdk:batch:submitJob``), its Input the SubmitJob request as the
SDKs spell it. The engine fires a schedule when its time comes (:meth:`Schedules.fire_due`,
from its step, woken by :meth:`Schedules.next_at`). A firing more than a minute late (the
service was down, or the machine asleep) is *missed*: it is listed on the schedule (see
:meth:`Schedules.batchbook_schedule_firings`), never run silently late, and a schedule with
catch-up on gets one run for all the firings it missed at once.

What the local engine does not do: FLEXIBLE windows fire at their start (AWS picks a time
within them), and a firing whose SubmitJob is refused is not retried (AWS retries per the
target's RetryPolicy): the refusal is listed with the firing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from batchbook.engine.registry import Registry
from batchbook.errors import ClientError, Conflict, ScheduleNotFound, ValidationError
from batchbook.expressions import Rule, parse
from batchbook.validation import from_sdk_input, validate_request
from batchbook.vocabulary import SCHEDULE_NAME, SUBMIT_JOB_TARGET, paginate

DEFAULT_GROUP = "default"
LATE_MS = 60_000  # a firing this late still runs (the loop was busy); a later one is missed
KEPT = 100  # the most recent firings and missed firings a schedule lists
START_SLACK_MS = 5 * 60_000  # AWS: a StartDate no earlier than 5 minutes ago
PAGE = 100
DEFAULT_RETRY = {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}

Submit = Callable[[dict[str, Any]], dict[str, Any]]


class Schedules:
    """The schedule groups and schedules, and when each fires next."""

    def __init__(self, clock: Callable[[], int], registry: Registry):
        self.clock = clock
        self._registry = registry  # its region: the request's, or a firing's schedule's
        self._arn = registry.scheduler_arn
        self._changed = registry.on_change  # what is persisted, as the registry's objects are
        self.groups: dict[str, dict[str, Any]] = {}
        self.schedules: dict[tuple[str, str], dict[str, Any]] = {}  # (group, name) -> record
        self._rules: dict[tuple[str, str], Rule] = {}

    # ------------------------------------------------------------------ groups
    def create_schedule_group(self, req: dict[str, Any]) -> dict[str, Any]:
        _validate("CreateScheduleGroup", req)
        name = req["Name"]
        if name == DEFAULT_GROUP or name in self.groups:
            raise Conflict(f"Schedule group {name} already exists.")
        now = _seconds(self.clock())
        group = {
            "Arn": self._arn(f"schedule-group/{name}"),
            "Name": name,
            "State": "ACTIVE",
            "CreationDate": now,
            "LastModificationDate": now,
        }
        self.groups[name] = group
        self._changed("schedulegroup", name, group)
        return {"ScheduleGroupArn": group["Arn"]}

    def get_schedule_group(self, req: dict[str, Any]) -> dict[str, Any]:
        _validate("GetScheduleGroup", req)
        return dict(self._group(req["Name"]))

    def delete_schedule_group(self, req: dict[str, Any]) -> dict[str, Any]:
        _validate("DeleteScheduleGroup", req)
        name = req["Name"]
        if name == DEFAULT_GROUP:
            raise ValidationError("Name: the default schedule group cannot be deleted")
        self._group(name)
        for key in [k for k in self.schedules if k[0] == name]:
            self._drop(key)
        del self.groups[name]
        self._changed("schedulegroup", name, None)
        return {}

    def list_schedule_groups(self, req: dict[str, Any]) -> dict[str, Any]:
        _validate("ListScheduleGroups", req)
        names = sorted({DEFAULT_GROUP, *self.groups})
        names = [n for n in names if n.startswith(req.get("NamePrefix", ""))]
        page, token = _page(names, req)
        return {"ScheduleGroups": [self._group(n) for n in page], **token}

    def _group(self, name: str) -> dict[str, Any]:
        if name == DEFAULT_GROUP:
            return {"Arn": self._arn(f"schedule-group/{name}"), "Name": name, "State": "ACTIVE"}
        if name not in self.groups:
            raise ScheduleNotFound(f"Schedule group {name} does not exist.")
        return self.groups[name]

    # ---------------------------------------------------------------- schedules
    def create_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        _validate("CreateSchedule", req)
        key = self._key(req)
        token = req.get("ClientToken")
        if key in self.schedules:
            made = self.schedules[key]
            if token is not None and made.get("clientToken") == token:  # a retried request
                return {"ScheduleArn": made["schedule"]["Arn"]}
            raise Conflict(f"Schedule {key[1]} already exists.")
        now = self.clock()
        schedule, rule = self._checked(req, key, now)
        record = {"schedule": schedule, "catchUp": False, "fired": [], "missed": []}
        self._store(key, {**record, "clientToken": token}, rule, now)
        return {"ScheduleArn": schedule["Arn"]}

    def update_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        """Replaces the schedule whole, as AWS does (members left out take their defaults);
        what it fired and missed stays listed."""
        _validate("UpdateSchedule", req)
        key = self._key(req)
        record = self._record(key)
        now = self.clock()
        schedule, rule = self._checked(req, key, now, record["schedule"]["CreationDate"])
        self._store(key, {**record, "schedule": schedule}, rule, now)
        return {"ScheduleArn": schedule["Arn"]}

    def get_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        _validate("GetSchedule", req)
        return dict(self._record(self._key(req))["schedule"])

    def delete_schedule(self, req: dict[str, Any]) -> dict[str, Any]:
        _validate("DeleteSchedule", req)
        key = self._key(req)
        self._record(key)
        self._drop(key)
        return {}

    def list_schedules(self, req: dict[str, Any]) -> dict[str, Any]:
        _validate("ListSchedules", req)
        group, prefix, state = req.get("GroupName"), req.get("NamePrefix", ""), req.get("State")
        if group is not None:
            self._group(group)
        keys = sorted(
            k
            for k, r in self.schedules.items()
            if (group is None or k[0] == group)
            and k[1].startswith(prefix)
            and state in (None, r["schedule"]["State"])
        )
        page, token = _page(keys, req)
        summaries = []
        for k in page:
            s = self.schedules[k]["schedule"]
            summary = {m: s[m] for m in SUMMARY if m in s}
            summaries.append({**summary, "Target": {"Arn": s["Target"]["Arn"]}})
        return {"Schedules": summaries, **token}

    def batchbook_schedule_firings(self, req: dict[str, Any]) -> dict[str, Any]:
        """batchbook's own operation (not AWS's): what a schedule fired and missed, when it
        fires next, and its catch-up setting (changed when the request has ``CatchUp``)."""
        if not isinstance(req.get("Name"), str):
            raise ValidationError("Name: required, the schedule's name")
        key = (str(req.get("GroupName") or DEFAULT_GROUP), req["Name"])
        record = self._record(key)
        if "CatchUp" in req:
            if not isinstance(req["CatchUp"], bool):
                raise ValidationError(f"CatchUp: {req['CatchUp']!r:.40} is not true or false")
            record = {**record, "catchUp": req["CatchUp"]}
            self._store(key, record)
        return {
            "Name": key[1],
            "GroupName": key[0],
            "CatchUp": record["catchUp"],
            "NextFiring": record.get("next"),
            "Fired": record["fired"],
            "Missed": record["missed"],
            "MissedCount": record.get("missedCount", len(record["missed"])),
            "MissedCountIsFloor": bool(record.get("missedMore")),  # counted up to a limit
        }

    # ------------------------------------------------------------------ firing
    def next_at(self) -> int | None:
        """When the next schedule is due (epoch ms), or None."""
        due = [r["next"] for r in self.schedules.values() if r.get("next") is not None]
        return min(due, default=None)

    def fire_due(self, now: int, submit: Submit) -> None:
        """Fire every schedule whose time has come, through ``submit`` (SubmitJob), in its
        own region (its ARN's)."""
        for key in [k for k, r in self.schedules.items() if r.get("next") is not None]:
            record = self.schedules[key]
            if record["next"] > now:
                continue
            region = self._registry.region
            self._registry.region = record["schedule"]["Arn"].split(":")[3]
            try:
                self._fire(key, record, now, submit)
            finally:
                self._registry.region = region

    def _fire(self, key: tuple[str, str], record: dict[str, Any], now: int, submit: Submit) -> None:
        """Fire what is due: a firing at most ``late`` ms ago now; older ones are missed
        (counted, the latest KEPT listed), with one catch-up run for them if asked."""
        schedule, rule = record["schedule"], self._rules[key]
        late = LATE_MS
        if schedule["FlexibleTimeWindow"]["Mode"] == "FLEXIBLE":
            late = max(late, schedule["FlexibleTimeWindow"]["MaximumWindowInMinutes"] * 60_000)
        fired, missed = list(record["fired"]), list(record["missed"])
        at: int | None = record["next"]
        count, floor = 0, bool(record.get("missedMore"))
        if at is not None and at < now - late:  # the service was down, or the machine asleep
            count, latest, more = self._missed(schedule, rule, at, now - late - 1)
            missed, floor = (missed + latest)[-KEPT:], floor or more
            at = self._after(schedule, rule, now - late)
        on_time = False
        while at is not None and at <= now:  # due within the window: on time
            fired.append(self._submit(schedule, at, submit, catch_up=False))
            on_time = True
            at = self._after(schedule, rule, at)
        if count and record["catchUp"] and not on_time:
            fired.append(self._submit(schedule, missed[-1], submit, catch_up=True))
        record = {
            **record,
            "fired": fired[-KEPT:],
            "missed": missed,
            "missedCount": record.get("missedCount", len(record["missed"])) + count,
            "missedMore": floor,
            "next": at,
        }
        if at is None and schedule.get("ActionAfterCompletion") == "DELETE":
            self._drop(key)
        else:
            self._store(key, record)

    @staticmethod
    def _missed(
        schedule: dict[str, Any], rule: Rule, first: int, last: int
    ) -> tuple[int, list[int], bool]:
        """The firings from ``first`` to ``last`` within the schedule's end date: how many,
        the latest KEPT, and whether the count is a floor."""
        end = _ms(schedule, "EndDate")
        last = last if end is None else min(last, end)
        return rule.count(first, last, _anchor(schedule), KEPT)

    @staticmethod
    def _submit(
        schedule: dict[str, Any], at: int, submit: Submit, catch_up: bool
    ) -> dict[str, Any]:
        firing: dict[str, Any] = {"At": at, "CatchUp": catch_up}
        try:
            request = from_sdk_input("SubmitJob", json.loads(schedule["Target"]["Input"]))
            firing["JobId"] = submit(request)["jobId"]
        except (ClientError, ValueError) as e:  # AWS retries, then its dead-letter queue
            firing["Error"] = f"SubmitJob refused: {e}"
        return firing

    # -------------------------------------------------------------- plumbing
    def _key(self, req: dict[str, Any]) -> tuple[str, str]:
        group = req.get("GroupName") or DEFAULT_GROUP
        self._group(group)
        return group, req["Name"]

    def _record(self, key: tuple[str, str]) -> dict[str, Any]:
        if key not in self.schedules:
            raise ScheduleNotFound(f"Schedule {key[1]} does not exist.")
        return self.schedules[key]

    def _checked(
        self, req: dict[str, Any], key: tuple[str, str], now: int, created: float | None = None
    ) -> tuple[dict[str, Any], Rule]:
        """The schedule ``req`` describes, as GetSchedule gives it, and its rule, checked as
        AWS does (nothing is changed here)."""
        rule = parse(req["ScheduleExpression"], req.get("ScheduleExpressionTimezone"))
        window = req["FlexibleTimeWindow"]
        if (window["Mode"] == "FLEXIBLE") != ("MaximumWindowInMinutes" in window):
            raise ValidationError(
                "FlexibleTimeWindow.MaximumWindowInMinutes: required with Mode FLEXIBLE, "
                "and not allowed with Mode OFF"
            )
        # AWS fills in the retry policy's defaults (24 hours, 185 retries)
        target = {"RetryPolicy": dict(DEFAULT_RETRY), **req["Target"]}
        target["RetryPolicy"] = {**DEFAULT_RETRY, **target["RetryPolicy"]}
        if target["Arn"] != SUBMIT_JOB_TARGET:
            raise ValidationError(
                f"Target.Arn: {target['Arn']!r:.80}: the local engine fires Batch SubmitJob "
                f"only, as the universal target {SUBMIT_JOB_TARGET}"
            )
        try:
            request = json.loads(target.get("Input") or "null")
        except ValueError as e:
            raise ValidationError(f"Target.Input: not valid JSON ({e})") from None
        if not isinstance(request, dict):
            raise ValidationError("Target.Input: SubmitJob's request, a JSON object")
        start, end = _ms(req, "StartDate"), _ms(req, "EndDate")
        if start is not None and start < now - START_SLACK_MS:
            raise ValidationError("StartDate: cannot be earlier than 5 minutes ago")
        if start is not None and end is not None and end <= start:
            raise ValidationError("EndDate: must be after StartDate")
        schedule = {
            **{m: req[m] for m in OPTIONAL if m in req},
            "Arn": self._arn(f"schedule/{key[0]}/{key[1]}"),
            "Name": key[1],
            "GroupName": key[0],
            "ScheduleExpression": req["ScheduleExpression"],
            "ScheduleExpressionTimezone": req.get("ScheduleExpressionTimezone", "UTC"),
            "State": req.get("State", "ENABLED"),
            "ActionAfterCompletion": req.get("ActionAfterCompletion", "NONE"),
            "FlexibleTimeWindow": window,
            "Target": target,
            "CreationDate": created if created is not None else _seconds(now),
            "LastModificationDate": _seconds(now),
        }
        for member, ms in (("StartDate", start), ("EndDate", end)):
            if ms is not None:
                schedule[member] = _seconds(ms)
        if rule.cron is not None and rule.after(now, now) is None:
            raise ValidationError(
                f"ScheduleExpression: {req['ScheduleExpression']!r} names no time from now on"
            )
        return schedule, rule

    def _store(
        self, key: tuple[str, str], record: dict[str, Any], rule: Rule | None = None, now: int = 0
    ) -> None:
        """Keep ``record``; with a (new) ``rule``, its next firing is from ``now`` on, that
        very millisecond included (a rate starts at once): what a paused or changed schedule
        would have fired meanwhile is not due."""
        if rule is not None:
            self._rules[key] = rule
            schedule = record["schedule"]
            enabled = schedule["State"] == "ENABLED"
            nxt = self._after(schedule, rule, now - 1) if enabled else None
            record = {**record, "next": nxt}
        self.schedules[key] = record
        self._changed("schedule", "/".join(key), record)

    @staticmethod
    def _after(schedule: dict[str, Any], rule: Rule, ms: int) -> int | None:
        """The schedule's first firing after ``ms`` within its start and end dates."""
        start = _ms(schedule, "StartDate")
        at = rule.after(max(ms, (start or 0) - 1), _anchor(schedule))
        end = _ms(schedule, "EndDate")
        return None if at is None or (end is not None and at > end) else at

    def _drop(self, key: tuple[str, str]) -> None:
        del self.schedules[key]
        self._rules.pop(key, None)
        self._changed("schedule", "/".join(key), None)

    def load(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "schedulegroup":
            self.groups[data["Name"]] = data
            return
        schedule = data["schedule"]
        key = (schedule["GroupName"], schedule["Name"])
        self.schedules[key] = data
        self._rules[key] = parse(
            schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]
        )


KINDS = ("schedulegroup", "schedule")
SUMMARY = ("Arn", "Name", "GroupName", "State", "CreationDate", "LastModificationDate")
OPTIONAL = ("Description", "KmsKeyArn")


def _validate(operation: str, req: dict[str, Any]) -> None:
    validate_request(operation, req, "scheduler", error=ValidationError)
    for member in ("Name", "GroupName"):  # the model's pattern, which validate_request skips
        value = req.get(member)
        if value is not None and not SCHEDULE_NAME.fullmatch(value):
            raise ValidationError(
                f"{member}: {value!r:.80} may hold only letters, digits, '-', '_' and '.'"
            )


def _page(items: list[Any], req: dict[str, Any]) -> tuple[list[Any], dict[str, str]]:
    try:
        page, token = paginate(
            items, req.get("MaxResults"), req.get("NextToken"), PAGE, ("MaxResults", "NextToken")
        )
    except ClientError as e:
        raise ValidationError(str(e)) from None
    return page, ({"NextToken": token} if token else {})


def _ms(req: dict[str, Any], member: str) -> int | None:
    """A timestamp member as epoch ms: boto3 sends epoch seconds, a hand-written request
    may send ISO 8601."""
    value = req.get(member)
    if value is None:
        return None
    if isinstance(value, int | float):
        return round(value * 1000)  # epoch seconds as a float: 1796155445.391 * 1000 is ...390.9998
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{member}: {value!r:.40} is not a timestamp") from None
    return int(when.replace(tzinfo=when.tzinfo or dt.UTC).timestamp() * 1000)


def _anchor(schedule: dict[str, Any]) -> int:
    """Where a rate's periods start: its start date, else its creation."""
    start = _ms(schedule, "StartDate")
    return start if start is not None else round(schedule["CreationDate"] * 1000)


def _seconds(ms: int) -> float:
    return ms / 1000
