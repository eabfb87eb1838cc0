"""``batch.schedule`` and ``batch.schedules()``: a map that runs on a timer, on the local
engine and on AWS alike.

A schedule is an EventBridge Scheduler schedule in the ``batchbook`` schedule group, on the
backend's own endpoint (the local service answers EventBridge Scheduler's API too). Its
target is Batch's SubmitJob through the universal target; its Input is the job of a map
whose function and inputs were stored once, as the schedule's template. Each firing's
worker makes that firing a run of its own (:mod:`batchbook.functions.firing`), so it shows
in ``batch.jobs()`` and ``Schedule.runs()`` like any map.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from batchbook.display import Lines
from batchbook.errors import BatchbookError, ClientError, Conflict, ResourceNotFound
from batchbook.expressions import cron_of, parse, rate_of
from batchbook.functions.backend import Backend
from batchbook.functions.backends import current
from batchbook.functions.ledger import RUN_TAG, read_ledger
from batchbook.functions.mapjob import MapJob
from batchbook.functions.options import RunOptions
from batchbook.functions.submission import submit_run
from batchbook.validation import sdk_input
from batchbook.vocabulary import (
    FINAL,
    SCHEDULE_GROUP,
    SCHEDULE_NAME,
    SUBMIT_JOB_TARGET,
    every_page,
)

GROUP = SCHEDULE_GROUP
TEMPLATES = "runs/schedule-"  # where templates are stored (see submission.submit_run)
DESCRIPTION = "batchbook: "  # then the rule as given, "; runs ", the function
REFUSED = {  # map options a schedule does not take, and why
    "budget": "a schedule's firings run unattended, with no client to stop them; "
    "estimate one with batch.estimate and cap each input with timeout_per_input=",
    "reuse": "every firing is a new run",
    "depends_on": "a firing depends on nothing",
    "wait": "a schedule waits for its firings; see Schedule.runs()",
}


def schedule(
    func: Callable[..., Any],
    *iterables: Iterable[Any],
    every: str | dt.timedelta | None = None,
    cron: str | None = None,
    name: str | None = None,
    catch_up: bool = False,
    backend: Backend | None = None,
    **map_options: Any,
) -> Schedule:
    """Run ``batch.map(func, *iterables, **map_options)`` on a timer: ``every="1h"`` (or
    "30m", "2d", a timedelta: at once, then every period, as EventBridge Scheduler starts a
    rate), or at the times of a 5-field UTC ``cron`` ("0 3 * * *": 03:00 each day).
    Without iterables, each firing calls ``func()`` once.

    ``name`` (default: the function's) is the schedule's, unique on its backend. With
    ``catch_up``, the local service runs a schedule once when it comes back after missing
    firings (it lists them either way); EventBridge Scheduler on AWS never misses them.
    """
    if (every is None) == (cron is None):
        raise ClientError("schedule: give exactly one of every= ('1h') and cron= ('0 3 * * *')")
    expression = rate_of(every) if every is not None else cron_of(str(cron))
    rule = f"every {every}" if every is not None else f"cron {cron}"
    for option, why in REFUSED.items():
        if map_options.get(option) not in (None, False):
            raise ClientError(f"{option}: not an option of a schedule ({why})")
    name = name or _default_name(func)
    if not SCHEDULE_NAME.fullmatch(name):
        raise ClientError(
            f"name: {name!r:.80} is not a schedule name; use 1 to 64 letters, digits, '-', "
            "'_' or '.'"
        )
    backend = backend or current()
    options = RunOptions.from_user({"name": name, **map_options})
    args = list(zip(*iterables, strict=False)) if iterables else [()]
    _ensure_group(backend)
    if _exists(backend, name):
        raise Conflict(
            f"name: a schedule {name!r} exists already; give another name= or delete it "
            f"(batch.schedules()[{name!r}].delete(), or batchbook schedule delete {name})"
        )
    made_on = {"name": name, "scheduler": _scheduler_of(backend)}
    backend, template = submit_run(
        func, args, {}, options, backend=backend, findable=False, schedule=made_on
    )
    function = template["function"]
    try:  # refused (a name taken meanwhile, a role missing): the template goes too
        backend.scheduler.create_schedule(
            Name=name,
            GroupName=GROUP,
            ScheduleExpression=expression,
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            Description=f"{DESCRIPTION}{rule}; runs {function}"[:512],
            State="ENABLED",
            Target={
                "Arn": SUBMIT_JOB_TARGET,
                "RoleArn": backend.scheduler_role(),
                "Input": json.dumps(sdk_input("SubmitJob", template["request"])),
            },
        )
    except Exception:
        backend.store.delete(f"runs/{template['id']}/")
        raise
    if catch_up:
        try:
            backend.schedule_firings(GROUP, name, catch_up=True)
        except Exception:
            backend.scheduler.delete_schedule(Name=name, GroupName=GROUP)
            backend.store.delete(f"runs/{template['id']}/")
            raise
    return Schedule(backend, _details(backend, name))


def schedules(backend: Backend | None = None) -> ScheduleList:
    """Every batchbook schedule of the backend, by name."""
    backend = backend or current()
    try:
        listed = every_page(
            backend.scheduler.list_schedules, "Schedules", "NextToken", GroupName=GROUP
        )
    except ResourceNotFound:  # no batchbook schedule group yet: no schedules
        return ScheduleList()
    names = [s["Name"] for s in listed]
    return ScheduleList(Schedule(backend, _details(backend, n)) for n in sorted(names))


class Schedule(Lines):
    """A schedule: its name, the rule as it was given, when it fires next, its runs."""

    def __init__(self, backend: Backend, details: dict[str, Any]):
        self.backend = backend
        self._details = details
        self._firings = backend.schedule_firings(GROUP, details["Name"])

    @property
    def name(self) -> str:
        return str(self._details["Name"])

    @property
    def expression(self) -> str:
        """EventBridge Scheduler's form of the rule: ``rate(1 hour)``, ``cron(0 3 * * ? *)``."""
        return str(self._details["ScheduleExpression"])

    @property
    def rule(self) -> str:
        """The rule as it was given: ``every 1h``, ``cron 0 3 * * *``."""
        text = str(self._details.get("Description") or "")
        return (
            text[len(DESCRIPTION) :].split("; runs ")[0]
            if text.startswith(DESCRIPTION)
            else self.expression
        )

    @property
    def paused(self) -> bool:
        return self._details["State"] != "ENABLED"

    @property
    def next_firing(self) -> dt.datetime | None:
        """When it fires next (UTC), or None: paused, or done."""
        if self.paused:
            return None
        if self._firings is not None:  # the local service's own word
            at = self._firings["NextFiring"]
        else:  # EventBridge Scheduler does not say: step the rule from its creation
            created = _epoch_ms(self._details["CreationDate"])
            at = parse(self.expression).after(int(time.time() * 1000), created)
        return None if at is None else dt.datetime.fromtimestamp(at / 1000, dt.UTC)

    @property
    def missed(self) -> list[dt.datetime]:
        """The latest firings (up to 100) the local service missed while it was down."""
        return [_utc(at) for at in (self._firings or {}).get("Missed", [])]

    @property
    def missed_count(self) -> int:
        return int((self._firings or {}).get("MissedCount", 0))

    @property
    def catch_up(self) -> bool:
        return bool((self._firings or {}).get("CatchUp", False))

    def runs(self) -> list[MapJob]:
        """Its firings' runs, oldest first (a firing shows once its first chunk started)."""
        entries = [e for e in read_ledger(self.backend.store)[0] if e.get("schedule") == self.name]
        entries.sort(key=lambda e: e["created"])
        return [MapJob.load(self.backend, e["id"]) for e in entries]

    def pause(self) -> Schedule:
        return self._set_state("DISABLED")

    def resume(self) -> Schedule:
        """Fires again from now on (what it would have fired while paused is not run)."""
        return self._set_state("ENABLED")

    def delete(self) -> None:
        """No more firings. Its runs stay, and so do the function and inputs they read
        (a firing still queued reads them too): ``batch.cleanup`` removes those once no run
        or job needs them."""
        self.backend.scheduler.delete_schedule(Name=self.name, GroupName=GROUP)

    def refresh(self) -> Schedule:
        self._details = _details(self.backend, self.name)
        self._firings = self.backend.schedule_firings(GROUP, self.name)
        return self

    def _set_state(self, state: str) -> Schedule:
        d = self._details
        keep = ("ScheduleExpression", "ScheduleExpressionTimezone", "FlexibleTimeWindow",
                "Description", "Target", "StartDate", "EndDate", "ActionAfterCompletion")  # fmt: skip
        self.backend.scheduler.update_schedule(
            Name=self.name, GroupName=GROUP, State=state, **{k: d[k] for k in keep if k in d}
        )
        return self.refresh()

    def lines(self) -> list[str]:
        when = self.next_firing
        head = f"Schedule {self.name!r}: {self.rule}, " + (
            "paused" if self.paused else f"next {when:%Y-%m-%d %H:%M} UTC" if when else "done"
        )
        out = [head, f"runs {self._function()} as {self.expression}"]
        if self._firings is not None:  # the local service's list (EventBridge keeps none)
            fired = self._firings["Fired"]
            if fired:
                last = fired[-1]
                out.append(
                    f"last fired {_utc(last['At']):%Y-%m-%d %H:%M} UTC"
                    + (" (a catch-up)" if last["CatchUp"] else "")
                    + (f": {last['Error']}" if "Error" in last else "")
                )
            else:
                out.append("not fired yet")
        if self.missed_count:
            latest = self.missed[-1]
            floor = "at least " if (self._firings or {}).get("MissedCountIsFloor") else ""
            out.append(
                f"missed {floor}{self.missed_count} firing(s) while the service was down, the latest "
                f"{latest:%Y-%m-%d %H:%M} UTC" + ("; caught up once" if self.catch_up else "")
            )
        return out

    def _function(self) -> str:
        text = str(self._details.get("Description") or "")
        return text.split("; runs ", 1)[1] if "; runs " in text else "a map"


class ScheduleList(list[Schedule]):
    """batch.schedules(): a list, also by name (``schedules()["nightly"]``)."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for s in self:
                if s.name == key:
                    return s
            raise ResourceNotFound(f"schedule {key!r}: none of that name; see batch.schedules()")
        return super().__getitem__(key)

    def __repr__(self) -> str:
        if not self:
            return "no schedules"
        return "\n".join(s.lines()[0] for s in self)

    def _repr_html_(self) -> str:
        import html

        rows = "".join(f"<li>{html.escape(s.lines()[0])}</li>" for s in self)
        return f"<ul>{rows}</ul>" if rows else "<p>no schedules</p>"


def forget_unused_templates(backend: Backend, cutoff_ms: float) -> list[str]:
    """Remove the templates stored before ``cutoff_ms`` (epoch ms) that nothing needs: made
    on this backend's scheduler, fired by none of its schedules, read by no kept run and by
    no job still to run (a firing queued). Their ids (for batch.cleanup, which never fails
    for them: when the schedules cannot be listed, every template stays)."""
    stored = []
    for key, _ in backend.store.list(TEMPLATES):
        if key.endswith("/run.json"):
            try:
                manifest = json.loads(bytes(backend.store.get(key)))
            except (FileNotFoundError, ValueError):
                continue
            stored.append(manifest)
    old = [m for m in stored if m["created"] < cutoff_ms]
    if not old:
        return []  # nothing to ask the scheduler about
    try:
        here = _scheduler_of(backend)
        old = [m for m in old if m["schedule"].get("scheduler") == here]
        used = {e["template"] for e in read_ledger(backend.store)[0] if e.get("template")}
        used |= {_template_of(s._details) for s in schedules(backend)}
        unused = [m for m in old if m["id"] not in used and not _jobs_to_run(backend, m)]
    except BatchbookError:  # no permission, no answer: keep them all
        return []
    for manifest in unused:
        backend.store.delete(f"runs/{manifest['id']}/")
    return [m["id"] for m in unused]


def _jobs_to_run(backend: Backend, template: dict[str, Any]) -> bool:
    """Whether a firing of ``template`` is still queued or running (and will read it)."""
    jobs = every_page(
        backend.batch.list_jobs,
        "jobSummaryList",
        jobQueue=template["options"]["queue"],
        filters=[{"name": "JOB_NAME", "values": [template["jobName"]]}],
    )
    return any(j["status"] not in FINAL for j in jobs)


def _scheduler_of(backend: Backend) -> str:
    """Which EventBridge Scheduler a backend's schedules are on (its endpoint and region)."""
    meta = backend.scheduler.meta
    return f"{meta.endpoint_url} {meta.region_name}"


def _template_of(details: dict[str, Any]) -> str:
    """The template a schedule fires: its job's ``batchbook:run`` tag."""
    try:
        return str(json.loads(details["Target"]["Input"])["Tags"][RUN_TAG])
    except (KeyError, TypeError, ValueError):
        return ""  # not one of batchbook's


def _ensure_group(backend: Backend) -> None:
    try:
        backend.scheduler.create_schedule_group(Name=GROUP)
    except Conflict:
        pass  # there already


def _exists(backend: Backend, name: str) -> bool:
    try:
        backend.scheduler.get_schedule(Name=name, GroupName=GROUP)
    except ResourceNotFound:
        return False
    return True


def _details(backend: Backend, name: str) -> dict[str, Any]:
    details = dict(backend.scheduler.get_schedule(Name=name, GroupName=GROUP))
    details.pop("ResponseMetadata", None)
    return details


def _default_name(func: Any) -> str:
    base = getattr(func, "__name__", type(func).__name__)
    cleaned = re.sub(r"[^0-9A-Za-z_.-]", "-", base).strip("-") or "schedule"
    return cleaned[:64]


def _epoch_ms(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return round(float(value) * 1000)


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
