"""EventBridge Scheduler's schedule expressions: made from batchbook's ``every=`` and
5-field ``cron=``, read, and stepped through in time (by the engine, which fires them, and
by a schedule's handle, which says when it fires next).

``at(2026-12-24T18:00:00)`` fires once; ``rate(5 minutes)`` every period from the schedule's
start; ``cron(m h dom mon dow year)`` at the times it names, in the schedule's time zone
(UTC unless ``ScheduleExpressionTimezone`` says otherwise). AWS's cron numbers the days of
the week 1-7 from Sunday and wants ``?`` in one of the two day fields; croniter (which
steps through the times) numbers them 0-6, so the fields are translated first.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from batchbook.errors import ValidationError

RATE_UNITS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\(([^()]*)\)")
# one item of a day-of-week list: a day or range (numbers or names), then /step, #nth or L
_DOW_ITEM = re.compile(
    r"(?P<base>\*|\d+(?:-\d+)?|[A-Za-z]{3}(?:-[A-Za-z]{3})?)(?P<tail>/\d+|#\d|L)?"
)
_LAST = re.compile(r"L(\d)")  # croniter's "last <day> of the month" (AWS writes it 6L)
_EVERY = re.compile(r"(\d+)\s*(m|min|mins|minutes?|h|hours?|d|days?)")
COUNTED = 10_000  # a cron's missed firings counted one by one, at most (a rate's: any number)
HORIZON_YEARS = 200  # a cron whose next time is further off than this never fires again


@dataclass(frozen=True)
class Rule:
    """A parsed schedule expression: :meth:`after` steps it through time."""

    text: str
    at_ms: int | None = None  # at(): the one time
    period_ms: int | None = None  # rate(): the period
    cron: str | None = None  # cron(): as croniter reads it (5 fields)
    years: str = "*"  # cron(): the year field
    zone: ZoneInfo | None = None

    def after(self, ms: int, anchor: int) -> int | None:
        """The first firing strictly after ``ms`` (epoch ms), or None: there is none.
        ``anchor``: a rate's first firing (its start date, else its creation: AWS starts
        a rate schedule at once), the next ones a period apart."""
        return next(self.firings(ms, anchor), None)

    def firings(self, ms: int, anchor: int) -> Iterator[int]:
        """The firings strictly after ``ms``, in order (see :meth:`after`)."""
        if self.at_ms is not None:
            if self.at_ms > ms:
                yield self.at_ms
            return
        if self.period_ms is not None:
            k = 0 if ms < anchor else (ms - anchor) // self.period_ms + 1
            while True:
                yield anchor + k * self.period_ms
                k += 1
        try:
            yield from self._cron_firings(ms)
        except CroniterError:  # a date that never comes (31 February)
            return

    def count(self, first: int, last: int, anchor: int, keep: int) -> tuple[int, list[int], bool]:
        """How many firings fall in [first, last], the latest ``keep`` of them, and whether
        the count is only a floor (a cron counted up to COUNTED, not further)."""
        if self.period_ms is not None:  # arithmetic, however many
            if last < first:
                return 0, [], False
            n = (last - first) // self.period_ms + 1
            start = first + max(0, n - keep) * self.period_ms
            return n, list(range(start, first + n * self.period_ms, self.period_ms)), False
        latest: deque[int] = deque(maxlen=keep)
        for n, at in enumerate(self.firings(first - 1, anchor)):
            if at > last:
                return n, list(latest), False
            if n == COUNTED:
                return n, list(latest), True
            latest.append(at)
        return len(latest), list(latest), False

    def _cron_firings(self, ms: int) -> Iterator[int]:
        """Stepped in wall-clock time, as AWS does across daylight saving time: a time the
        clocks skip does not fire, a time they repeat fires once (the first time)."""
        assert self.cron is not None and self.zone is not None  # one of the three, by parse()
        local = dt.datetime.fromtimestamp(ms / 1000, self.zone).replace(tzinfo=None)
        last_year = local.year + HORIZON_YEARS
        times = croniter(self.cron, local, ret_type=dt.datetime)
        while True:
            wall = times.get_next(dt.datetime)
            if wall.year > last_year:
                return
            if not _year_matches(self.years, wall.year):
                years = range(wall.year + 1, last_year + 1)
                year = next((y for y in years if _year_matches(self.years, y)), None)
                if year is None:
                    return
                times = croniter(self.cron, dt.datetime(year, 1, 1) - dt.timedelta(minutes=1))
                continue
            when = wall.replace(tzinfo=self.zone, fold=0)
            exists = when.astimezone(dt.UTC).astimezone(self.zone).replace(tzinfo=None) == wall
            at = int(when.timestamp() * 1000)
            if exists and at > ms:
                yield at


def parse(expression: str, timezone: str | None = None) -> Rule:
    """The rule of ``expression``; ValidationException naming what is wrong, else."""
    zone = _zone(timezone or "UTC")
    text = expression.strip()
    if m := _AT.fullmatch(text):
        try:
            when = dt.datetime.fromisoformat(m[1]).replace(tzinfo=zone)
        except ValueError as e:
            raise ValidationError(f"ScheduleExpression: {expression!r}: {e}") from None
        return Rule(text, at_ms=int(when.timestamp() * 1000), zone=zone)
    if m := _RATE.fullmatch(text):
        value, unit = int(m[1]), m[2].rstrip("s")
        if value < 1:
            raise ValidationError(f"ScheduleExpression: {expression!r}: the rate must be >= 1")
        return Rule(text, period_ms=value * RATE_UNITS[unit], zone=zone)
    if m := _CRON.fullmatch(text):
        return _cron(expression, m[1].split(), zone)
    raise ValidationError(
        f"ScheduleExpression: {expression!r} is not one of at(yyyy-mm-ddThh:mm:ss), "
        "rate(value minute|minutes|hour|hours|day|days) or cron(minutes hours "
        "day-of-month month day-of-week year)"
    )


def _cron(expression: str, fields: list[str], zone: ZoneInfo) -> Rule:
    if len(fields) != 6:
        raise ValidationError(
            f"ScheduleExpression: {expression!r} has {len(fields)} fields; cron() takes 6: "
            "minutes hours day-of-month month day-of-week year"
        )
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ValidationError(
            f"ScheduleExpression: {expression!r}: exactly one of day-of-month and "
            "day-of-week must be '?'"
        )
    # AWS: SUN=1..SAT=7, "6L" the last Friday; croniter: SUN=0..SAT=6, "L5" (names alike)
    dow = "*" if dow == "?" else _days(expression, dow, _from_aws)
    cron = " ".join([minute, hour, "*" if dom == "?" else dom, month, dow])
    if not croniter.is_valid(cron) or not re.fullmatch(r"\*|[\d,\-/]+", year):
        raise ValidationError(f"ScheduleExpression: {expression!r} is not a valid cron()")
    return Rule(expression.strip(), cron=cron, years=year, zone=zone)


def _from_aws(expression: str, day: int) -> int:
    if not 1 <= day <= 7:
        raise ValidationError(
            f"ScheduleExpression: {expression!r}: day-of-week {day} is out of range; "
            "allowed 1 (SUN) to 7 (SAT)"
        )
    return day - 1


def _to_aws(cron: str, day: int) -> int:
    return day % 7 + 1  # a 5-field cron's 0 and 7 are both Sunday


def _days(text: str, field: str, convert: Callable[[str, int], int]) -> str:
    """A day-of-week field with its day numbers converted (not its steps, nor the n of
    ``#n``); ``L`` moves to where the other side writes it."""
    items = []
    for item in field.split(","):
        last = _LAST.fullmatch(item)  # croniter's L5 is AWS's 6L
        if last is not None:
            items.append(f"{convert(text, int(last[1]))}L")
            continue
        m = _DOW_ITEM.fullmatch(item)
        if m is None:
            items.append(item)  # left for the validity check to refuse
            continue
        tail = m["tail"] or ""
        span = m["base"].split("-")
        if convert is _to_aws and len(span) == 2 and span[1] == "7" and span[0].isdigit():
            # a 5-field range that runs to Sunday again (5-7, 0-7, 1-7/2): AWS's days one by one
            step = int(tail[1:]) if tail.startswith("/") else 1
            days = sorted({_to_aws(text, d) for d in range(int(span[0]), 8, step)})
            items.append("1-7" if len(days) == 7 else ",".join(map(str, days)))
            continue
        ends = [str(convert(text, int(e))) if e.isdigit() else e for e in span]
        if tail == "L":  # AWS's 6L is croniter's L5
            items.append(f"L{ends[0]}")
        else:
            items.append("-".join(ends) + tail)
    return ",".join(items)


def _year_matches(years: str, year: int) -> bool:
    if years == "*":
        return True
    for part in years.split(","):
        span, _, step = part.partition("/")
        low, _, high = span.partition("-")
        first = int(low) if low not in ("", "*") else 1970
        last = int(high) if high else (first if not step else 2199)
        if first <= year <= last and (year - first) % int(step or 1) == 0:
            return True
    return False


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"ScheduleExpressionTimezone: {name!r} is not a time zone (e.g. UTC, Europe/Paris)"
        ) from None


def rate_of(every: str | dt.timedelta) -> str:
    """``rate(...)`` for ``every=`` ("30m", "1h", "2 days", or a timedelta of whole minutes)."""
    if isinstance(every, dt.timedelta):
        minutes, rest = divmod(every.total_seconds(), 60)
        if rest or minutes < 1:
            raise ValidationError(
                f"every: {every} is not a whole number of minutes (at least 1); "
                "EventBridge Scheduler's rates are in minutes, hours or days"
            )
    else:
        m = _EVERY.fullmatch(str(every).strip().lower())
        if m is None or int(m[1]) < 1:
            raise ValidationError(
                f"every: {every!r:.40} is not a period; give e.g. '30m', '1h', '2d' "
                "(minutes, hours or days, at least 1) or a timedelta"
            )
        minutes = int(m[1]) * {"m": 1, "h": 60, "d": 1440}[m[2][0]]
    value, unit = int(minutes), "minute"
    for size, name in ((1440, "day"), (60, "hour")):
        if value % size == 0:
            value, unit = value // size, name
            break
    return f"rate({value} {unit}{'' if value == 1 else 's'})"


def cron_of(cron: str) -> str:
    """``cron(m h dom mon dow *)`` for a 5-field cron (UTC): AWS wants ``?`` in one of the
    day fields and numbers the days of the week from SUN=1, so the numbers move by one."""
    fields = cron.split()
    if len(fields) != 5 or not croniter.is_valid(cron) or "?" in cron:
        raise ValidationError(
            f"cron: {cron!r:.60} is not a 5-field cron (minute hour day-of-month month "
            "day-of-week, in UTC), e.g. '0 3 * * *' for 03:00 every day"
        )
    minute, hour, dom, month, dow = fields
    if dom != "*" and dow != "*":
        raise ValidationError(
            f"cron: {cron!r:.60} restricts both the day of the month and the day of the week; "
            "cron runs on either, which EventBridge Scheduler cannot say: make one of them *"
        )
    if dow == "*":
        dow = "?"
    else:
        dom, dow = "?", _days(cron, dow, _to_aws)
    return f"cron({minute} {hour} {dom} {month} {dow} *)"
