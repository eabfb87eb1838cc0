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
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from batchbook.errors import ValidationError

RATE_UNITS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_CRON = re.compile(r"cron\(([^()]*)\)")
_DOW = re.compile(r"(?<![#/])\d+")  # a day number (not an nth, not a step)
_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")  # a 5-field cron's 0-7
_EVERY = re.compile(r"(\d+)\s*(m|min|mins|minutes?|h|hours?|d|days?)")
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
        ``anchor``: when a rate's periods start (the start date, else its creation)."""
        if self.at_ms is not None:
            return self.at_ms if self.at_ms > ms else None
        if self.period_ms is not None:
            if ms < anchor:
                return anchor + self.period_ms
            return anchor + ((ms - anchor) // self.period_ms + 1) * self.period_ms
        assert self.cron is not None  # one of the three, by parse()
        start = dt.datetime.fromtimestamp(ms / 1000, self.zone)
        times = croniter(self.cron, start, ret_type=dt.datetime)
        for _ in range(HORIZON_YEARS * 12):  # a year field skips at most that many months
            when = times.get_next(dt.datetime)
            if when.year - start.year > HORIZON_YEARS:
                return None
            if _year_matches(self.years, when.year):
                return int(when.timestamp() * 1000)
        return None


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
    # AWS: SUN=1..SAT=7; croniter: SUN=0..SAT=6 (names are the same in both)
    dow = "*" if dow == "?" else _DOW.sub(lambda d: _dow(expression, d[0]), dow)
    cron = " ".join([minute, hour, "*" if dom == "?" else dom, month, dow])
    if not croniter.is_valid(cron) or not re.fullmatch(r"\*|[\d,\-/]+", year):
        raise ValidationError(f"ScheduleExpression: {expression!r} is not a valid cron()")
    return Rule(expression.strip(), cron=cron, years=year, zone=zone)


def _dow(expression: str, digits: str) -> str:
    value = int(digits)
    if not 1 <= value <= 7:
        raise ValidationError(
            f"ScheduleExpression: {expression!r}: day-of-week {value} is out of range; "
            "allowed 1 (SUN) to 7 (SAT)"
        )
    return str(value - 1)


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
    day fields and numbers the days of the week from SUN=1, so the days become names."""
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
        dom, dow = "?", _DOW.sub(lambda d: _NAMES[int(d[0])], dow)
    return f"cron({minute} {hour} {dom} {month} {dow} *)"
