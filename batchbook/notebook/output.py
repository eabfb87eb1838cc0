"""What a cell's job prints, streamed into the cell: the followed children's log streams,
attempt by attempt, read forward from where the last read stopped, and the output of
children that failed. Called from the cell's own thread once per snapshot (at most twice
a second), and once more when the job is final, so nothing printed is missed however fast
the job ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from batchbook.vocabulary import FINAL, LOG_GROUP
from batchbook.wording import count

if TYPE_CHECKING:
    from batchbook.functions.mapjob import MapJob
    from batchbook.functions.snapshot import Snapshot

MAX_FAILED_SHOWN = 5  # children whose output is shown when they fail (the rest: a line)
MAX_LINES = 2000  # lines printed per update while the job runs (the rest: the next updates)


def attempt_streams(detail: dict[str, Any]) -> list[str]:
    """A job's log streams, one per attempt in order, the running one last ("" for an
    attempt that ended before its container started)."""
    streams = [a["container"].get("logStreamName", "") for a in detail.get("attempts", [])]
    current = (detail.get("container") or {}).get("logStreamName")
    if detail["status"] not in FINAL and current:
        streams.append(current)
    return streams


class CellOutput:
    """Streams ``follow`` (child indices; None: every child) into ``out``; with
    ``failures``, also the output of other children once they fail."""

    def __init__(
        self, job: MapJob, follow: Iterable[int] | None, out: IO[str], failures: bool = True
    ):
        self.job = job
        self.out = out
        self.array = job.size > 1
        self.follow = set(range(job.size) if follow is None else follow)
        self.failures = failures
        self._done: set[int] = set()  # followed children final and read to the end
        self._tokens: dict[str, str | None] = {}  # stream -> where the next read starts
        self._drained: set[str] = set()  # streams of finished attempts, read to the end
        self._failed_seen = 0
        self._failed_shown: set[int] = set()
        self._failed_more = 0
        self._budget: int | None = None  # lines this update may still print (None: all)

    def update(self, snap: Snapshot) -> None:
        """Print what the followed children wrote since the last update (all of it once the
        snapshot is final), and the output of children that failed since."""
        todo = sorted(self.follow - self._done)
        self._budget = None if snap.final else MAX_LINES  # the last read takes all that is left
        if todo:
            for detail in self.job.backend.describe(self._job_ids(todo)):
                self._stream(detail)
        if self.failures and self.array and snap.failed > self._failed_seen:
            self._failed_seen = snap.failed
            self._show_failures()
        if snap.final and self._failed_more:
            self._write(
                f"[batch] {count(self._failed_more, 'more child', 'more children')} failed; "
                f"%batch logs {self.job.name} --index I shows one\n"
            )
            self._failed_more = 0
        self.out.flush()

    def _job_ids(self, indices: list[int]) -> list[str]:
        return [self.job.chunk_job_id(i) for i in indices]  # one child per input here

    def _index(self, detail: dict[str, Any]) -> int:
        return int((detail.get("arrayProperties") or {}).get("index", 0))

    def _stream(self, detail: dict[str, Any]) -> None:
        """Read the child's attempts in order: the finished ones to their end, then the
        current one as far as it got."""
        index = self._index(detail)
        streams = attempt_streams(detail)
        final = detail["status"] in FINAL
        complete = True
        for attempt, stream in enumerate(streams, 1):
            if not stream or stream in self._drained:
                continue
            if attempt > 1 and stream not in self._tokens:
                self._write(self._prefix(index) + f"--- attempt {attempt} ---\n")
            complete = self._read(index, stream) and complete
            if complete and attempt <= len(detail.get("attempts", [])):
                self._drained.add(stream)
        if final and complete:
            self._done.add(index)

    def _read(self, index: int, stream: str) -> bool:
        """Print what the stream holds past the last read, within this update's budget of
        lines; True once it is read to its end (False: the rest comes next update)."""
        token = self._tokens.get(stream)
        prefix = self._prefix(index)
        logs = self.job.backend.logs
        while True:
            if self._budget is not None and self._budget <= 0:
                self._tokens[stream] = token
                return False
            page = logs.get_log_events(
                logGroupName=LOG_GROUP,
                logStreamName=stream,
                startFromHead=True,
                limit=min(10_000, self._budget or 10_000),
                **({"nextToken": token} if token else {}),
            )
            if page["events"]:
                self._write("".join(f"{prefix}{e['message']}\n" for e in page["events"]))
                if self._budget is not None:
                    self._budget -= len(page["events"])
            ended = page["nextForwardToken"] == token or not page["events"]
            token = page["nextForwardToken"]  # kept even from an empty page (CloudWatch's)
            if ended:
                self._tokens[stream] = token
                return True

    def _show_failures(self) -> None:
        """The whole output of each newly failed child (up to MAX_FAILED_SHOWN of them)."""
        snap = self.job.snapshot(rows=slice(0, None), status="FAILED")
        new = sorted(
            i
            for i in (self._index(row) for row in snap.rows)
            if i not in self.follow and i not in self._failed_shown
        )
        room = MAX_FAILED_SHOWN - len(self._failed_shown)
        shown, self._failed_more = new[:room], self._failed_more + len(new[room:])
        self._failed_shown.update(new)
        if not shown:
            return
        for detail in self.job.backend.describe(self._job_ids(shown)):
            index = self._index(detail)
            reason = detail.get("statusReason") or "failed"
            self._write(f"[batch] child {index} failed ({reason}); what it printed:\n")
            self._stream(detail)

    def _prefix(self, index: int) -> str:
        return f"[{index}] " if self.array else ""

    def _write(self, text: str) -> None:
        self.out.write(text)
