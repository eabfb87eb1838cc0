"""Snapshots of a map: what ``status()``, its repr and the views show, built in a few Batch
calls whatever the number of children.

A snapshot is immutable. It comes from the array parent's ``statusSummary`` (children by
status), the results already in the store (inputs with a value or an error), and, for the
children whose status matters per input (running, starting, failed), one ListJobs page
each; a map of at most 100 children simply describes them all in one call.
:func:`place_inputs` turns that into a status per input, purely.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from batchbook.vocabulary import FINAL, STATUSES
from batchbook.wording import count

if TYPE_CHECKING:
    from batchbook.functions.payload import Outcome

WAITING = ("RUNNABLE", "PENDING", "SUBMITTED")  # the most advanced first
RUNNING = ("RUNNING", "STARTING")


@dataclass(frozen=True)
class Snapshot:
    """How a map stands at one moment (``taken``, time.monotonic())."""

    name: str
    job_id: str
    size: int
    taken: float
    statuses: Mapping[str, int]  # inputs by Batch status (SUCCEEDED: its value is back)
    elapsed: float  # seconds since the map was created
    final: bool
    reason: str | None = None  # why waiting children can never start, as Batch says
    calls: int = 0  # Batch calls it took (with rows: the calls the rows took)
    rows: tuple[dict[str, Any], ...] = field(default=())  # children, when asked for
    # per chunk: the status of its inputs that have no value yet (empty: not placed)
    chunk_statuses: tuple[str, ...] = field(default=(), repr=False)
    chunk_reasons: Mapping[int, str] = field(default_factory=dict, repr=False)  # failed ones

    @property
    def done(self) -> int:
        return self.statuses.get("SUCCEEDED", 0)

    @property
    def failed(self) -> int:
        return self.statuses.get("FAILED", 0)

    @property
    def running(self) -> int:
        return sum(self.statuses.get(s, 0) for s in RUNNING)

    @property
    def waiting(self) -> int:
        return sum(self.statuses.get(s, 0) for s in WAITING)

    @property
    def throughput(self) -> float | None:
        """Finished inputs per second so far (None before any)."""
        finished = self.done + self.failed
        return finished / self.elapsed if finished and self.elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds until every input is finished, at the throughput so far."""
        rate = self.throughput
        if self.final:
            return 0.0
        return (self.size - self.done - self.failed) / rate if rate else None

    def counts(self) -> dict[str, int]:
        """The inputs by status, the empty ones left out (what ``MapJob.status()`` returns)."""
        return {k: v for k, v in self.statuses.items() if v}

    def line(self) -> str:
        parts = ", ".join(f"{k.lower()} {v}" for k, v in self.counts().items())
        eta = f", about {self.eta:.0f} s left" if self.eta and not self.final else ""
        why = f"; cannot start: {self.reason}" if self.reason else ""
        return f"{parts}{eta}{why}"

    def __repr__(self) -> str:
        return (
            f"<MapJob {self.name} ({count(self.size, 'input')}, job {self.job_id}): {self.line()}>"
        )

    def _repr_html_(self) -> str:
        cells = "".join(f"<td>{html.escape(k)}</td><td>{v}</td>" for k, v in self.counts().items())
        note = f"<p><b>Cannot start:</b> {html.escape(self.reason)}</p>" if self.reason else ""
        return (
            f"<div><b>MapJob {html.escape(self.name)}</b> — {count(self.size, 'input')}, "
            f"job <code>{html.escape(self.job_id)}</code><table><tr>{cells}</tr></table>"
            f"{note}</div>"
        )


def input_statuses(
    chunks: list[tuple[int, int]],
    done_in: list[int],
    known: Mapping[int, str],
    summary: Mapping[str, int],
) -> dict[str, int]:
    """Inputs by status, from what is known of each chunk (see :func:`chunk_statuses`)."""
    return place_inputs(chunks, done_in, known, summary)[0]


def place_inputs(
    chunks: list[tuple[int, int]],
    done_in: list[int],
    known: Mapping[int, str],
    summary: Mapping[str, int],
) -> tuple[dict[str, int], tuple[str, ...]]:
    """Inputs by status, and the status of each chunk's inputs that have no value yet.

    ``done_in[c]``: inputs of chunk ``c`` with a value (an input whose latest outcome is an
    error may yet succeed: its chunk's status decides); ``known``: the status of the chunks
    looked up one by one (running, starting, failed ones, or all of them); ``summary``:
    children by status (the parent's statusSummary), which places the rest. A chunk not
    looked up and not all done waits: chunks start in index order, so the earlier ones are
    taken to be the more advanced.
    """
    out: dict[str, int] = dict.fromkeys(STATUSES, 0)
    placed: list[str] = []
    waiting = [n for n in (summary.get(s, 0) for s in WAITING)]
    slot = 0  # the first waiting status with chunks left, in order of advance
    for c, (start, end) in enumerate(chunks):
        size, done = end - start, done_in[c]
        out["SUCCEEDED"] += done
        status = known.get(c)
        if status is None:
            if done == size:
                placed.append("SUCCEEDED")
                continue
            while slot < len(WAITING) and waiting[slot] <= 0:
                slot += 1
            if slot < len(WAITING):
                waiting[slot] -= 1
                status = WAITING[slot]
            else:  # more waiting chunks than the summary counts: the most advanced
                status = WAITING[0]
        elif status == "SUCCEEDED":
            status = "FAILED"  # a finished chunk without this input's value
        out[status] += size - done
        placed.append(status)
    return out, tuple(placed)


def page_children(
    batch: Any, parent: dict[str, Any], chunks: int, rows: slice, status: str | None
) -> tuple[list[dict[str, Any]], int]:
    """ListJobs summaries of the children (of ``status``, else every status) in ``rows``,
    paged no further than its end; and the calls it took."""
    if chunks == 1:  # no array: the job itself
        job = [parent] if status in (None, parent.get("status")) else []
        return job[rows], 0
    stop = rows.stop
    found: list[dict[str, Any]] = []
    calls = 0
    for wanted in [status] if status else list(STATUSES):
        token = None
        while stop is None or len(found) < stop:
            page = batch.list_jobs(
                arrayJobId=parent["jobId"],
                jobStatus=wanted,
                maxResults=1000 if stop is None else max(1, min(1000, stop - len(found))),
                **({"nextToken": token} if token else {}),
            )
            calls += 1
            found += page["jobSummaryList"]
            token = page.get("nextToken")
            if not token:
                break
    return found[rows], calls


class InputRow(NamedTuple):
    """One input as a view's table shows it."""

    input: int  # its position in the map
    status: str
    attempt: int | None  # of its latest outcome
    started: int | None  # epoch ms
    stopped: int | None
    note: str  # its error ("Type: message"), or why its child failed, or ""

    @property
    def duration(self) -> float | None:
        """Seconds, once it ended."""
        return (self.stopped - self.started) / 1000 if self.started and self.stopped else None


def input_row(index: int, status: str, outcome: Outcome | None, reason: str | None) -> InputRow:
    if outcome is None:
        return InputRow(index, status, None, None, None, reason or "")
    note = ""
    if not outcome.ok and status in FINAL:
        error = outcome.error()
        note = f"{error['type']}: {error['message']}"
    return InputRow(index, status, outcome.attempt, outcome.started, outcome.stopped, note)
