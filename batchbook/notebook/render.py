"""HTML for the job view, from snapshots and input rows (pure: no widgets, no calls).

The live part of a view is one HTML string: the summary (a progress bar of done and failed
inputs, counts by status, throughput, ETA, why waiting children cannot start), a page of
the input table, and the log tail of the selected child; so a refresh is one message.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from batchbook.functions.snapshot import InputRow, Snapshot
from batchbook.wording import count

PAGE_ROWS = 50
SORTS = ("input", "status", "attempt", "started", "duration")
COLOURS = {
    "SUCCEEDED": "#2e7d32",
    "FAILED": "#c62828",
    "RUNNING": "#1565c0",
    "STARTING": "#42a5f5",
    "RUNNABLE": "#9e9e9e",
    "PENDING": "#bdbdbd",
    "SUBMITTED": "#e0e0e0",
}


@dataclass(frozen=True)
class TableState:
    """What the user chose for the table: a status to show (None: all), a sort, a page."""

    status: str | None = None
    sort: str = "input"
    descending: bool = False
    page: int = 0


def table_page(rows: Sequence[InputRow], state: TableState) -> tuple[list[InputRow], int]:
    """The rows of the chosen page (filtered, sorted) and how many pages there are."""
    chosen = [r for r in rows if state.status is None or r.status == state.status]
    if state.sort != "input" or state.descending:
        chosen.sort(key=_sort_key(state.sort), reverse=state.descending)
    pages = max(1, -(-len(chosen) // PAGE_ROWS))
    page = min(max(state.page, 0), pages - 1)
    return chosen[page * PAGE_ROWS : (page + 1) * PAGE_ROWS], pages


def _sort_key(sort: str) -> Callable[[InputRow], Any]:
    if sort == "status":
        return lambda r: (r.status, r.input)
    if sort == "duration":
        return lambda r: (r.duration is None, r.duration or 0.0, r.input)
    if sort in ("attempt", "started"):
        return lambda r: (getattr(r, sort) is None, getattr(r, sort) or 0, r.input)
    return lambda r: r.input


def summary_html(snap: Snapshot) -> str:
    """The bar and the counts: what a glance at the view tells."""
    done, failed, size = snap.done, snap.failed, max(snap.size, 1)
    bar = (
        f'<div style="display:flex;height:14px;width:100%;max-width:640px;background:#eee;'
        f'border-radius:3px;overflow:hidden">'
        f'<div style="width:{100 * done / size:.2f}%;background:{COLOURS["SUCCEEDED"]}"></div>'
        f'<div style="width:{100 * failed / size:.2f}%;background:{COLOURS["FAILED"]}"></div>'
        f'<div style="width:{100 * snap.running / size:.2f}%;background:{COLOURS["RUNNING"]}"></div>'
        "</div>"
    )
    counts = " ".join(
        f'<span style="color:{COLOURS.get(k, "#000")}">{k.lower()} {v:,}</span>'
        for k, v in snap.counts().items()
    )
    pace = []
    if snap.throughput:
        pace.append(f"{snap.throughput:,.1f} inputs/s")
    if snap.eta and not snap.final:
        pace.append(f"about {snap.eta:,.0f} s left")
    pace.append(f"{snap.elapsed:,.1f} s {'in all' if snap.final else 'so far'}")
    state = "finished" if snap.final else "running"
    reason = (
        f'<div style="color:{COLOURS["FAILED"]}"><b>Cannot start:</b> {html.escape(snap.reason)}</div>'
        if snap.reason
        else ""
    )
    return (
        f"<div><b>MapJob {html.escape(snap.name)}</b> — {count(snap.size, 'input')}, job "
        f"<code>{html.escape(snap.job_id)}</code>, {state}: {done + failed:,}/{snap.size:,} "
        f"finished{f', {failed:,} failed' if failed else ''}</div>{bar}"
        f"<div>{counts} · {' · '.join(pace)}</div>{reason}"
    )


def table_html(rows: Sequence[InputRow], state: TableState, pages: int, total: int) -> str:
    """A page of the input table."""
    head = "".join(
        f"<th>{h}</th>" for h in ("input", "status", "attempt", "started", "duration", "note")
    )
    body = "".join(
        "<tr>"
        f"<td>{r.input}</td>"
        f'<td style="color:{COLOURS.get(r.status, "#000")}">{r.status}</td>'
        f"<td>{r.attempt or ''}</td>"
        f"<td>{_clock(r.started)}</td>"
        f"<td>{'' if r.duration is None else f'{r.duration:.2f} s'}</td>"
        f"<td>{html.escape(r.note[:200])}</td>"
        "</tr>"
        for r in rows
    )
    shown = "all" if state.status is None else state.status.lower()
    order = f"by {state.sort}{' (descending)' if state.descending else ''}"
    caption = f"page {min(state.page, pages - 1) + 1} of {pages} · {total:,} {shown} · {order}"
    return (
        f'<div style="font-size:90%;color:#555">{caption}</div>'
        f'<table style="font-size:90%"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def log_html(title: str, lines: Sequence[str]) -> str:
    text = html.escape("\n".join(lines)) if lines else "(no output yet)"
    return (
        f'<div style="font-size:90%;color:#555">{html.escape(title)}</div>'
        f'<pre style="max-height:16em;overflow:auto;background:#f7f7f7;margin:0">{text}</pre>'
    )


def _clock(ms: int | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) if ms else ""
