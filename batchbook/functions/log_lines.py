"""Reading lines of an attempt's log stream through CloudWatch Logs' GetLogEvents: from its
head no further than the lines wanted, or its tail from the end."""

from __future__ import annotations

from typing import Any

from batchbook.vocabulary import LOG_GROUP


def log_lines(logs: Any, stream: str, first: int, end: int | None, tail: int | None) -> list[str]:
    """Lines ``first`` to ``end`` of a stream (paged from its head, no further than
    ``end``), or its last ``tail`` lines (paged from its end); ``logs``: a Logs client."""
    if tail is not None:
        if tail == 0:
            return []
        page = logs.get_log_events(
            logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=False, limit=tail
        )
        return [e["message"] for e in page["events"]][-tail:]
    lines: list[str] = []
    token = None
    while end is None or len(lines) < end:
        page = logs.get_log_events(
            logGroupName=LOG_GROUP,
            logStreamName=stream,
            startFromHead=True,
            limit=10_000 if end is None else max(1, min(10_000, end - len(lines))),
            **({"nextToken": token} if token else {}),
        )
        lines += [e["message"] for e in page["events"]]
        if not page["events"] or page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    return lines[first:end]


# ------------------------------------------------------------------ control
