"""The live job view (ipywidgets 8): what displaying a MapJob (or a Job) in a kernel shows.

One view is a few controls and one HTML widget that holds everything that changes while
the job runs (the summary, a page of the input table, the selected child's log tail), so a
refresh is at most one comm message. Refreshes come from the backend's one watcher thread
(at most every ``REFRESH_SECONDS``, and once more when the job is final, after which the
view stops); the controls act on the kernel's thread; a lock keeps the two apart. Nothing
here prints: messages show in the view. The display bundle also carries ``text/plain``
and ``text/html``, so a saved notebook, nbviewer or a terminal shows the summary.
"""

from __future__ import annotations

import dataclasses
import html
import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from batchbook.display import with_text
from batchbook.errors import BatchbookError
from batchbook.functions.log_lines import log_lines
from batchbook.notebook.output import attempt_streams
from batchbook.notebook.render import (
    PAGE_ROWS,
    SORTS,
    TableState,
    log_html,
    summary_html,
    table_html,
    table_page,
)
from batchbook.vocabulary import STATUSES
from batchbook.wording import count

if TYPE_CHECKING:
    from batchbook.functions.mapjob import MapJob
    from batchbook.functions.snapshot import Snapshot

REFRESH_SECONDS = 1.0  # one live message a second at most, however fast the watcher goes
PLOT_SECONDS = 3.0  # the plots (when shown) are redrawn at most this often while it runs
LOG_TAIL = 20
RESULTS_AT_MOST = 1000  # a finished map this big shows its results frame in the view
# the choices that mean "no filter" and "the latest attempt" (not None: ipywidgets reads a
# Dropdown's None as "nothing selected" and shows it blank)
ALL = "all"
LATEST = 0


class JobView:
    """A live view of one map: counts and bar, the input table, a log tail, and buttons."""

    def __init__(self, job: MapJob):
        self.job = job
        self.table = TableState()
        self.selection: list[int] = []
        self.attempt: int | None = None  # of the selected child (None: its latest)
        self.message = ""
        self.snap: Snapshot | None = None
        self.refreshes = 0  # live renders applied
        self._lock = threading.RLock()
        self._applied = 0.0
        self._unwatch: Any = None
        self._log_cache: dict[tuple[str, int], list[str]] = {}  # final attempts' tails
        self._pages = 1

        self.live = w.HTML()
        self.status_w = w.Dropdown(
            options=[("all", ALL), *((s.lower(), s) for s in STATUSES)], description="show"
        )
        self.sort_w = w.Dropdown(options=list(SORTS), description="sort by")
        self.descending_w = w.ToggleButton(description="descending")
        self.prev_w = w.Button(description="◀ page")
        self.next_w = w.Button(description="page ▶")
        self.select_w = w.Text(  # read on Enter or leaving the box, not at every key
            placeholder="e.g. 3 or 3, 7-9", description="select", continuous_update=False
        )
        self.attempt_w = w.Dropdown(options=[("latest", LATEST)], description="attempt")
        self.cancel_selected_w = w.Button(description="Cancel selected", button_style="warning")
        self.cancel_all_w = w.Button(description="Cancel all", button_style="danger")
        self.retry_w = w.Button(description="Retry failed")
        self.why_w = w.Button(description="Why?", tooltip="why it waits, in plain words")
        self.why = w.HTML()  # the diagnosis the button asked for
        self.plots_w = w.ToggleButton(description="Plots", tooltip="timeline and durations")
        self.plots = w.HBox()  # the figures, made when first shown (plotly loads then)
        self._plotted = 0.0
        self.results_w = w.HTML()
        self.cost = w.HTML()  # the cost panel: so far, against the estimate and the budget
        self.widget = w.VBox(
            [
                w.HBox([self.status_w, self.sort_w, self.descending_w, self.prev_w, self.next_w]),
                w.HBox([self.select_w, self.attempt_w, self.cancel_selected_w]),
                w.HBox([self.cancel_all_w, self.retry_w, self.why_w, self.plots_w]),
                self.live,
                self.why,
                self.plots,
                self.results_w,
                self.cost,
            ]
        )
        for control in (self.status_w, self.sort_w, self.descending_w):
            control.observe(self._on_table, names="value")
        self.prev_w.on_click(lambda _: self.turn(-1))
        self.next_w.on_click(lambda _: self.turn(+1))
        self.select_w.observe(lambda change: self.select(change["new"]), names="value")
        self.attempt_w.observe(
            lambda change: self.choose_attempt(change["new"] or None), names="value"
        )
        self.cancel_selected_w.on_click(lambda _: self.cancel_selected())
        self.cancel_all_w.on_click(lambda _: self.cancel_all())
        self.retry_w.on_click(lambda _: self.retry_failed())
        self.why_w.on_click(lambda _: self.explain())
        self.plots_w.observe(lambda change: self.show_plots(change["new"]), names="value")
        self.refresh(job.snapshot())
        self._watch()

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        snap = self.snap or self.job.snapshot()
        return with_text(self.widget, repr(snap), snap._repr_html_(), **kwargs)

    def __repr__(self) -> str:
        return repr(self.snap or self.job.snapshot())

    # ------------------------------------------------------------------ refreshes
    def _watch(self) -> None:
        if self._unwatch is None:
            self._unwatch = self.job.watch(self._on_snapshot)

    def _on_snapshot(self, snap: Snapshot) -> None:
        """From the watcher thread: apply at most one refresh a second, and the final one."""
        if not snap.final and time.monotonic() - self._applied < REFRESH_SECONDS:
            return
        self.refresh(snap)
        if snap.final and self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def refresh(self, snap: Snapshot | None = None) -> None:
        """Render ``snap`` (a fresh snapshot if None) into the view."""
        with self._lock:
            snap = snap or self.job.snapshot(max_age=0)
            self.snap = snap
            value = self._render(snap)
            with self.live.hold_sync():
                self.live.value = value
            cost = self.job.cost(refresh=False)._repr_html_()  # from what the snapshot read
            if cost != self.cost.value:
                self.cost.value = cost
            if snap.final and not self.results_w.value:
                self.results_w.value = self._results_html()
            self._applied = time.monotonic()
            self.refreshes += 1

    def _render(self, snap: Snapshot) -> str:
        rows = self.job.input_rows(snap)
        if self.plots.children and (snap.final or time.monotonic() - self._plotted >= PLOT_SECONDS):
            self._draw(rows)
        table, selection = self.table, list(self.selection)  # as they are now (under the lock)
        page, pages = table_page(rows, table)
        self._pages = pages
        total = sum(table.status in (None, r.status) for r in rows)
        first, last = table.page <= 0, table.page >= pages - 1
        if (self.prev_w.disabled, self.next_w.disabled) != (first, last):
            self.prev_w.disabled, self.next_w.disabled = first, last
        parts = [summary_html(snap), table_html(page, table, pages, total)]
        if selection:
            parts.append(self._log_part(selection[0]))
        if self.message:
            parts.append(f"<div><i>{html.escape(self.message)}</i></div>")
        return "".join(parts)

    def _results_html(self) -> str:
        if self.job.size > RESULTS_AT_MOST:  # to_frame() loads every value: not for a look
            return f"<div><b>Results</b>: {self.job.size:,} inputs; job.to_frame() has them</div>"
        frame = self.job.to_frame()
        hidden = ["traceback", "started", "stopped", "log_stream", "job_id"]
        shown = frame.drop(columns=hidden).head(PAGE_ROWS)
        more = f"<div>first {PAGE_ROWS} of {len(frame):,} rows; job.to_frame() has all</div>"
        return (
            "<b>Results</b>" + shown.to_html(max_cols=20) + (more if len(frame) > PAGE_ROWS else "")
        )

    def _draw(self, rows: list[Any]) -> None:
        from batchbook.notebook.plots import update_durations, update_timeline

        timeline, durations = self.plots.children
        update_timeline(timeline, rows + self.job.earlier_rows(), self.job.size)  # every attempt
        update_durations(durations, rows)
        self._plotted = time.monotonic()

    def show_plots(self, shown: bool) -> None:
        """Show (or hide) the timeline and the duration histogram."""
        with self._lock:
            if shown and not self.plots.children:
                from batchbook.notebook.plots import durations_figure, timeline_figure

                self.plots.children = (timeline_figure(), durations_figure())
            elif not shown:
                self.plots.children = ()
        if shown:
            self._plotted = 0.0  # draw now
            self.refresh(self.snap)

    # ------------------------------------------------------------------ the log tail
    def _child(self, index: int) -> tuple[str, str]:
        """(job id, label) of the child that holds input ``index``."""
        chunk = index // self.job.manifest["chunksize"]
        if len(self.job.chunks) == 1:
            return self.job.job_id, f"input {index}"
        first, end = self.job.chunks[chunk]
        inputs = f"input {first}" if end - first == 1 else f"inputs {first}-{end - 1}"
        return self.job.chunk_job_id(chunk), f"child {chunk} ({inputs})"

    def _log_part(self, index: int) -> str:
        job_id, label = self._child(index)
        (detail,) = self.job.backend.describe([job_id])
        streams = attempt_streams(detail)
        if not streams:
            return log_html(f"{label}: {detail['status'].lower()}, no attempt yet", [])
        number = self.attempt if self.attempt and self.attempt <= len(streams) else len(streams)
        stream = streams[number - 1]
        if not stream:  # the attempt ended before its container started: it wrote nothing
            return log_html(f"{label}, attempt {number} of {len(streams)}: no log", [])
        finished = number <= len(detail.get("attempts", []))
        key = (stream, number)
        lines = self._log_cache.get(key) if finished else None
        if lines is None:
            lines = log_lines(self.job.backend.logs, stream, 0, None, LOG_TAIL)
            if finished:
                self._log_cache[key] = lines
        title = f"{label}, attempt {number} of {len(streams)}, last {LOG_TAIL} lines"
        return log_html(title, lines)

    # ------------------------------------------------------------------ controls
    def _on_table(self, _change: Any = None) -> None:
        with self._lock:
            self._set_table()
        self.refresh(self.snap)

    def _set_table(self) -> None:
        self.table = dataclasses.replace(
            self.table,
            status=None if self.status_w.value == ALL else self.status_w.value,
            sort=self.sort_w.value,
            descending=self.descending_w.value,
            page=0,
        )

    def turn(self, pages: int) -> None:
        """Go ``pages`` pages on (or back), within the pages there are."""
        with self._lock:
            page = min(max(0, self.table.page + pages), max(0, self._pages - 1))
            self.table = dataclasses.replace(self.table, page=page)
        self.refresh(self.snap)

    def select(self, text: str) -> None:
        """Select inputs (``"3"``, ``"3, 7-9"``): the first one's log shows; they can be cancelled."""
        with self._lock:
            try:
                self.selection = parse_indices(text, self.job.size)
            except ValueError as e:
                self.selection, self.message = [], str(e)
            else:
                self.message = ""
            self.attempt = None
        if self.selection:
            (detail,) = self.job.backend.describe([self._child(self.selection[0])[0]])
            streams = len(attempt_streams(detail))
            self.attempt_w.options = [
                ("latest", LATEST),
                *((str(n), n) for n in range(1, streams + 1)),
            ]
        self.refresh(self.snap)

    def choose_attempt(self, attempt: int | None) -> None:
        with self._lock:
            self.attempt = attempt
        self.refresh(self.snap)

    def cancel_selected(self) -> None:
        if not self.selection:
            self._act("select the inputs to cancel first (e.g. 3, 7-9)")
            return
        self.job.cancel("Cancelled in the job view", indices=self.selection)
        self._act(f"cancelled {count(len(self.selection), 'input')}: {_ranges(self.selection)}")

    def cancel_all(self) -> None:
        self.job.cancel("Cancelled in the job view")
        self._act("cancelled every input that had not finished")

    def retry_failed(self) -> None:
        try:
            follow_up = self.job.retry_failed()
        except BatchbookError as e:
            self._act(str(e))
            return
        self.results_w.value = ""
        self._act(f"retrying {count(follow_up.size, 'failed input')} as {follow_up.name}")
        self._watch()

    def explain(self) -> None:
        """Show why the map is where it is (job.diagnose()), in the view."""
        try:
            self.why.value = self.job.diagnose()._repr_html_()
        except BatchbookError as e:
            self.why.value = f"<div><i>{html.escape(str(e))}</i></div>"

    def _act(self, message: str) -> None:
        self.message = message
        self.refresh()  # a fresh snapshot: the action changed what it shows


def parse_indices(text: str, size: int) -> list[int]:
    """``"3, 7-9"`` -> [3, 7, 8, 9]; a ValueError that says what is wrong."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise ValueError(f"select: {part!r} is not an input or a range like 7-9") from None
        if not 0 <= low <= high < size:
            raise ValueError(f"select: {part} is outside the inputs 0 to {size - 1}")
        out.extend(range(low, high + 1))
    return sorted(set(out))


def _ranges(indices: list[int]) -> str:
    spans: list[list[int]] = []
    for i in indices:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def view(job: Any, plots: bool = False) -> JobView:
    """A live view of a MapJob (or a Job's map); ``plots``: with the timeline and durations
    shown. Displaying the job shows one too; this keeps it at hand (``view.refresh()``)."""
    from batchbook.functions.futures import Job

    shown = JobView(job.map_job if isinstance(job, Job) else job)
    if plots:
        shown.plots_w.value = True
    return shown
