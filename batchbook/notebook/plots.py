"""plotly figures of a map: a timeline of its inputs and a histogram of their durations.

Both are built from input rows (so from a snapshot, with no Batch call) and have a fixed
set of traces, one per final status, so a live update only sets their data (one
``batch_update``). Up to ``LANES`` inputs the timeline draws a lane per input, a bar for
each attempt it had, from its start to its end (earlier attempts failed); above that it
draws how many inputs were running over time, stacked by how they ended, in ``BINS``
steps. An attempt shows once it ended. The histogram counts each input's latest attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from batchbook.functions.snapshot import InputRow
from batchbook.notebook.render import COLOURS

LANES = 500
BINS = 120
ENDED = ("SUCCEEDED", "FAILED")


def _figure(layout: dict[str, Any], kind: str) -> Any:
    import plotly.graph_objects as go

    traces = [
        (go.Bar if kind == "bar" else go.Histogram)(
            name=status.lower(), marker_color=COLOURS[status]
        )
        for status in ENDED
    ]
    return go.FigureWidget(
        data=traces, layout={"height": 260, "margin": {"t": 30, "b": 30}, **layout}
    )


def timeline_figure() -> Any:
    return _figure({"title": "timeline", "barmode": "overlay", "xaxis": {"type": "date"}}, "bar")


def durations_figure() -> Any:
    return _figure(
        {"title": "durations", "barmode": "overlay", "xaxis": {"title": "seconds"}}, "histogram"
    )


def ended(rows: Sequence[InputRow]) -> list[InputRow]:
    return [r for r in rows if r.status in ENDED and r.started and r.stopped]


def update_timeline(fig: Any, rows: Sequence[InputRow], size: int) -> None:
    """Lanes (or, for more than LANES inputs, inputs running over time) of the ended rows."""
    done = ended(rows)
    with fig.batch_update():
        if size <= LANES:
            fig.layout.yaxis.title = "input"
            for trace, status in zip(fig.data, ENDED, strict=True):
                mine = [r for r in done if r.status == status]
                trace.orientation, trace.width = "h", 0.8  # one lane each, however few
                trace.y = [r.input for r in mine]
                trace.base = [r.started for r in mine]
                trace.x = [max(1, (r.stopped or 0) - (r.started or 0)) for r in mine]
            return
        fig.layout.barmode = "stack"
        fig.layout.yaxis.title = "inputs running"
        if not done:
            for trace in fig.data:
                trace.x, trace.y = [], []
            return
        first = min(r.started or 0 for r in done)
        last = max(r.stopped or 0 for r in done)
        step = max(1, (last - first) // BINS + 1)
        edges = [first + k * step for k in range(BINS + 1)]
        for trace, status in zip(fig.data, ENDED, strict=True):
            running = [0] * BINS
            for r in done:
                if r.status != status:
                    continue
                low = ((r.started or 0) - first) // step
                high = min(BINS - 1, ((r.stopped or 0) - first) // step)
                for k in range(low, high + 1):
                    running[k] += 1
            trace.orientation, trace.width = "v", None
            trace.x = [e + step // 2 for e in edges[:-1]]
            trace.y = running
            trace.base = None


def update_durations(fig: Any, rows: Sequence[InputRow]) -> None:
    done = ended(rows)
    with fig.batch_update():
        for trace, status in zip(fig.data, ENDED, strict=True):
            trace.x = [r.duration for r in done if r.status == status]
