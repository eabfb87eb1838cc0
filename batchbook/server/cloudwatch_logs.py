"""The CloudWatch Logs subset a log viewer and ``aws logs`` need, over the engine's log files.

One log group, ``/aws/batch/job``; one stream per attempt, named as Batch names
it (``<jobDefinitionName>/default/<taskId>``). Paging tokens are positions:
``f/<n>`` reads forward from event n, ``b/<n>`` backward from before event n,
so at the end of a stream GetLogEvents hands back the token it was given, as
CloudWatch does. Positions count from the stream's first event whatever the time
window, and GetLogEvents seeks to them (``batchbook.runtime.logs.LogReader``): a
page costs what it holds, not the stream before it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchbook.errors import ClientError, InvalidParameter, ResourceNotFound
from batchbook.runtime.local import LocalBatch
from batchbook.runtime.logs import READER
from batchbook.validation import validate_request
from batchbook.vocabulary import LOG_GROUP, paginate, with_token

MAX_EVENTS = 10_000
_TOKEN = re.compile(r"^([fb])/(\d{1,12})$")


class CloudWatchLogs:
    """CloudWatch Logs operations by API name, answering from ``lb``'s log streams."""

    OPERATIONS = (
        "DescribeLogGroups",
        "DescribeLogStreams",
        "FilterLogEvents",
        "GetLogEvents",
        "ListTagsLogGroup",
    )

    def __init__(self, lb: LocalBatch):
        self.lb = lb

    def call(self, operation: str, request: dict[str, Any], region: str) -> dict[str, Any]:
        if operation not in self.OPERATIONS:
            raise ClientError(
                f"operation {operation!r} is not supported by the local CloudWatch Logs; "
                f"supported: {', '.join(self.OPERATIONS)}"
            )
        validate_request(operation, request, "logs", InvalidParameter)
        handler: Callable[[dict[str, Any], str], dict[str, Any]] = getattr(self, "_" + operation)
        return handler(request, region)

    # ------------------------------------------------------------------ operations
    def _DescribeLogGroups(self, req: dict[str, Any], region: str) -> dict[str, Any]:
        prefix = req.get("logGroupNamePrefix") or ""
        wanted = req.get("logGroupIdentifiers")
        groups = []
        if LOG_GROUP.startswith(prefix) and (not wanted or LOG_GROUP in wanted):
            arn = f"arn:aws:logs:{region}:{self.lb.engine.host.account}:log-group:{LOG_GROUP}"
            groups.append(
                {
                    "logGroupName": LOG_GROUP,
                    "creationTime": self._created(),
                    "metricFilterCount": 0,
                    "arn": arn + ":*",
                    "logGroupArn": arn,
                    "storedBytes": 0,
                    "logGroupClass": "STANDARD",
                }
            )
        page, token = self._page(groups, req.get("limit"), req.get("nextToken"), 50)
        return with_token({"logGroups": page}, token)

    def _ListTagsLogGroup(self, req: dict[str, Any], region: str) -> dict[str, Any]:
        self._group(req)
        return {"tags": {}}  # the local group is the service's own: nobody tagged it

    def _DescribeLogStreams(self, req: dict[str, Any], region: str) -> dict[str, Any]:
        self._group(req)
        prefix = req.get("logStreamNamePrefix") or ""
        by_time = req.get("orderBy") == "LastEventTime"
        if by_time and prefix:
            raise InvalidParameter(
                "logStreamNamePrefix: cannot be combined with orderBy LastEventTime"
            )
        streams = []
        for name, created in self.lb.log_streams():
            if not name.startswith(prefix):
                continue
            stream: dict[str, Any] = {
                "logStreamName": name,
                "creationTime": created,
                "arn": f"arn:aws:logs:{region}:{self.lb.engine.host.account}:log-group:"
                f"{LOG_GROUP}:log-stream:{name}",
                "storedBytes": 0,
            }
            try:
                st = self._path(name).stat()
            except FileNotFoundError:
                pass
            else:  # the file's last write is the stream's last event
                last = int(st.st_mtime * 1000)
                stream.update(lastEventTimestamp=last, lastIngestionTime=last)
            streams.append(stream)
        key = (
            (lambda s: (s.get("lastEventTimestamp", 0), s["logStreamName"]))
            if by_time
            else (lambda s: s["logStreamName"])
        )
        streams.sort(key=key, reverse=bool(req.get("descending")))
        page, token = self._page(streams, req.get("limit"), req.get("nextToken"), 50)
        return with_token({"logStreams": page}, token)

    def _GetLogEvents(self, req: dict[str, Any], region: str) -> dict[str, Any]:
        self._group(req)
        name = req["logStreamName"]
        path = self._path(name)
        if not path.is_file() and name not in {s for s, _ in self.lb.log_streams()}:
            raise ResourceNotFound("The specified log stream does not exist.")
        limit = req.get("limit") or MAX_EVENTS
        # tokens are event numbers in the stream, so a reader can seek (see LogReader)
        first, last = READER.window(path, req.get("startTime"), req.get("endTime"))
        token = req.get("nextToken")
        if token:
            m = _TOKEN.match(token)
            if m is None:
                raise InvalidParameter("nextToken: the specified nextToken is invalid")
            forward, at = m.group(1) == "f", min(max(int(m.group(2)), first), last)
        else:
            forward = bool(req.get("startFromHead"))
            at = first if forward else last
        start, end = (at, min(at + limit, last)) if forward else (max(first, at - limit), at)
        return {
            "events": [
                {"timestamp": ts, "message": msg, "ingestionTime": ts}
                for ts, msg in READER.read(path, start, end)
            ],
            "nextForwardToken": f"f/{end}",
            "nextBackwardToken": f"b/{start}",
        }

    def _FilterLogEvents(self, req: dict[str, Any], region: str) -> dict[str, Any]:
        self._group(req)
        names = req.get("logStreamNames")
        prefix = req.get("logStreamNamePrefix")
        if names and prefix:
            raise InvalidParameter("logStreamNames and logStreamNamePrefix cannot both be given")
        if names is None:
            names = sorted({s for s, _ in self.lb.log_streams() if s.startswith(prefix or "")})
        match = _pattern(req.get("filterPattern") or "")
        found = []
        for name in names:
            path = self._path(name)
            first, last = READER.window(path, req.get("startTime"), req.get("endTime"))
            for i, (ts, msg) in enumerate(READER.read(path, first, last), first):
                if match(msg):
                    found.append((ts, name, i, msg))
        found.sort()
        page, token = self._page(
            found, req.get("limit") or MAX_EVENTS, req.get("nextToken"), MAX_EVENTS
        )
        return with_token(
            {
                "events": [
                    {
                        "logStreamName": name,
                        "timestamp": ts,
                        "message": msg,
                        "ingestionTime": ts,
                        "eventId": f"{ts}-{i}-{name}",
                    }
                    for ts, name, i, msg in page
                ],
                "searchedLogStreams": [
                    {"logStreamName": n, "searchedCompletely": token is None} for n in names
                ],
            },
            token,
        )

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _group(req: dict[str, Any]) -> None:
        group = req.get("logGroupName") or req.get("logGroupIdentifier")
        if group is None:
            raise InvalidParameter("logGroupName: required (the local log group is /aws/batch/job)")
        if group.rsplit(":log-group:", 1)[-1].removesuffix(":*") != LOG_GROUP:
            raise ResourceNotFound(
                f"The specified log group does not exist: {group!r:.200}; the local one is {LOG_GROUP}"
            )

    def _path(self, stream: str) -> Path:
        if (
            not stream
            or "\x00" in stream
            or any(part in ("", ".", "..") for part in stream.split("/"))
        ):
            raise InvalidParameter(f"logStreamName: {stream!r:.200} is not a valid stream name")
        return self.lb.log_path(stream)

    def _created(self) -> int:
        return int(self.lb.state_dir.stat().st_ctime * 1000)

    @staticmethod
    def _page(
        items: list[Any], limit: int | None, token: str | None, most: int
    ) -> tuple[list[Any], str | None]:
        try:
            return paginate(items, limit, token, most)
        except ClientError as e:
            raise InvalidParameter(str(e)) from None


def _pattern(text: str) -> Callable[[str], bool]:
    """CloudWatch's plain filter patterns: every term must occur; ``-term`` must not; quotes group."""
    try:
        terms = shlex.split(text)
    except ValueError:
        raise InvalidParameter(f"filterPattern: {text!r:.200} has an unmatched quote") from None
    need = [t for t in terms if not t.startswith("-")]
    avoid = [t[1:] for t in terms if t.startswith("-") and len(t) > 1]
    return lambda msg: all(t in msg for t in need) and not any(t in msg for t in avoid)
