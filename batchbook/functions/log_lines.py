"""Reading lines of an attempt's log stream through CloudWatch Logs' GetLogEvents: lines
``first`` to ``end`` (seeking to ``first`` where the endpoint's tokens allow it, else paging
from the head no further than ``end``), or its tail from the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchbook.vocabulary import LOG_GROUP


def log_lines(
    logs: Any,
    stream: str,
    first: int,
    end: int | None,
    tail: int | None,
    seek: Callable[[int], str | None] = lambda _: None,
) -> list[str]:
    """Lines ``first`` to ``end`` of a stream, or its last ``tail`` lines (paged from its
    end); ``logs``: a Logs client; ``seek(n)``: a token that reads forward from line n, or
    None where the endpoint has none (then the lines before ``first`` are paged past)."""
    if tail is not None:  # backward from the end
        lines: list[str] = []
        token = None
        while len(lines) < tail:
            page = logs.get_log_events(
                logGroupName=LOG_GROUP,
                logStreamName=stream,
                startFromHead=False,
                limit=min(10_000, tail - len(lines)),
                **({"nextToken": token} if token else {}),
            )
            lines[:0] = [e["message"] for e in page["events"]]
            if not page["events"] or page["nextBackwardToken"] == token:
                break
            token = page["nextBackwardToken"]
        return lines[len(lines) - tail :] if tail else []
    token = seek(first) if first else None
    skip = 0 if token else first  # lines read that come before `first`
    want = None if end is None else end - first + skip  # lines to read
    lines = []
    while want is None or len(lines) < want:
        page = logs.get_log_events(
            logGroupName=LOG_GROUP,
            logStreamName=stream,
            startFromHead=True,
            limit=10_000 if want is None else min(10_000, want - len(lines)),
            **({"nextToken": token} if token else {}),
        )
        lines += [e["message"] for e in page["events"]]
        if not page["events"] or page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    return lines[skip:want]
