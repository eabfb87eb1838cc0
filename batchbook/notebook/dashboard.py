"""The dashboard (``batch.dashboard()``, ``%batch dashboard``): the Batch console's front page
in the notebook: compute environments with the vCPUs in use, queues with their jobs by
status, and the recent runs; live.

A :class:`Board` is what one look at the backend finds (pure data, rendered to HTML);
:class:`Dashboard` is the live widget, refreshed by the backend's watcher when Batch
changes (at most twice a second; idle, never).
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from batchbook.display import with_text
from batchbook.functions.backend import Backend
from batchbook.functions.backends import current
from batchbook.functions.ledger import read_ledger
from batchbook.functions.watcher import watcher
from batchbook.notebook.render import COLOURS
from batchbook.vocabulary import MAX_DESCRIBE_JOBS, STATUSES, name_of

RECENT_RUNS = 10
LISTED = 100  # jobs listed per queue and status; more shows as "100+"


@dataclass(frozen=True)
class Board:
    """One look at the backend (``final`` is never true: a dashboard runs until closed)."""

    taken: float
    environments: list[dict[str, Any]]  # name, state, status, type, max, in_use
    queues: list[dict[str, Any]]  # name, state, priority, counts {status: n}, more {status}
    runs: list[dict[str, Any]]  # name, inputs, created, status
    final: bool = field(default=False)

    def __repr__(self) -> str:
        envs = "; ".join(
            f"{e['name']} {e['in_use']:g}/{e['max']:g} vCPUs" for e in self.environments
        )
        queues = "; ".join(
            f"{q['name']}: "
            + ", ".join(f"{k.lower()} {_n(q, k)}" for k in q["counts"] if q["counts"][k])
            for q in self.queues
        )
        return (
            f"<batchbook dashboard: {envs or 'no compute environments'} | {queues or 'no queues'}>"
        )

    def _repr_html_(self) -> str:
        envs = "".join(
            f"<tr><td>{html.escape(e['name'])}</td><td>{e['type']}</td><td>{e['state']}</td>"
            f"<td>{e['status']}</td><td>{_meter(e['in_use'], e['max'])} {e['in_use']:g} / {e['max']:g}</td></tr>"
            for e in self.environments
        )
        queues = "".join(
            f"<tr><td>{html.escape(q['name'])}</td><td>{q['state']}</td><td>{q['priority']}</td>"
            + "".join(
                f'<td style="color:{COLOURS[s]}">{_n(q, s) if q["counts"][s] else ""}</td>'
                for s in STATUSES
            )
            + "</tr>"
            for q in self.queues
        )
        runs = "".join(
            f"<tr><td>{html.escape(r['name'])}</td><td>{r['inputs']:,}</td><td>{r['created']}</td>"
            f'<td style="color:{COLOURS.get(r["status"], "#000")}">{r["status"]}</td></tr>'
            for r in self.runs
        )
        head = "".join(f"<th>{s.lower()}</th>" for s in STATUSES)
        return (
            "<div><b>Compute environments</b><table><tr><th>name</th><th>type</th><th>state</th>"
            f"<th>status</th><th>vCPUs in use</th></tr>{envs}</table>"
            f"<b>Job queues</b><table><tr><th>name</th><th>state</th><th>priority</th>{head}</tr>"
            f"{queues}</table><b>Recent runs</b><table><tr><th>name</th><th>inputs</th>"
            f"<th>created</th><th>status</th></tr>{runs}</table></div>"
        )


def _n(queue: dict[str, Any], status: str) -> str:
    return f"{queue['counts'][status]}{'+' if status in queue['more'] else ''}"


def _meter(used: float, most: float) -> str:
    share = 0 if not most else min(1.0, used / most)
    return (
        '<span style="display:inline-block;width:80px;height:10px;background:#eee">'
        f'<span style="display:inline-block;width:{80 * share:.0f}px;height:10px;'
        f'background:{COLOURS["RUNNING"]}"></span></span>'
    )


def look(backend: Backend) -> Board:
    """What the backend's Batch endpoint and ledger say now."""
    batch = backend.batch
    environments = {
        e["computeEnvironmentName"]: {
            "name": e["computeEnvironmentName"],
            "type": (e.get("computeResources") or {}).get("type", e.get("type", "")),
            "state": e.get("state", ""),
            "status": e.get("status", ""),
            "max": float((e.get("computeResources") or {}).get("maxvCpus", 0)),
            "in_use": 0.0,
        }
        for e in batch.describe_compute_environments()["computeEnvironments"]
    }
    queues = []
    for q in batch.describe_job_queues()["jobQueues"]:
        counts, more, active = {}, set(), []
        for status in STATUSES:
            page = batch.list_jobs(jobQueue=q["jobQueueName"], jobStatus=status, maxResults=LISTED)
            counts[status] = len(page["jobSummaryList"])
            if page.get("nextToken"):
                more.add(status)
            if status in ("PENDING", "RUNNABLE", "STARTING", "RUNNING"):
                active += [j["jobId"] for j in page["jobSummaryList"]]
        used = _vcpus_in_use(backend, active[: 2 * MAX_DESCRIBE_JOBS])
        order = sorted(q.get("computeEnvironmentOrder", []), key=lambda o: o["order"])
        if order and name_of(order[0]["computeEnvironment"]) in environments:
            environments[name_of(order[0]["computeEnvironment"])]["in_use"] += used
        queues.append(
            {
                "name": q["jobQueueName"],
                "state": q.get("state", ""),
                "priority": q.get("priority", 0),
                "counts": counts,
                "more": more,
            }
        )
    return Board(time.monotonic(), list(environments.values()), queues, _recent_runs(backend))


def _vcpus_in_use(backend: Backend, job_ids: list[str]) -> float:
    """vCPUs these jobs hold now: a job's own while it runs, an array's running children's
    (their size read from child 0: the local engine describes an array parent without its
    container)."""
    details = backend.describe(job_ids)
    arrays = [d for d in details if "statusSummary" in (d.get("arrayProperties") or {})]
    sizes = {d["jobId"]: _vcpus(d) for d in details}
    bare = [d["jobId"] for d in arrays if not sizes[d["jobId"]]]
    for child in backend.describe([f"{job_id}:0" for job_id in bare]):
        sizes[child["jobId"].rsplit(":", 1)[0]] = _vcpus(child)
    used = 0.0
    for d in details:
        summary = (d.get("arrayProperties") or {}).get("statusSummary")
        if summary is not None:
            used += sizes[d["jobId"]] * (summary.get("RUNNING", 0) + summary.get("STARTING", 0))
        elif d["status"] in ("RUNNING", "STARTING"):
            used += sizes[d["jobId"]]
    return used


def _vcpus(detail: dict[str, Any]) -> float:
    container = detail.get("container") or {}
    vcpus = float(container.get("vcpus") or 0)
    for r in container.get("resourceRequirements", []):
        if r["type"] == "VCPU":
            vcpus = float(r["value"])
    return vcpus


def _recent_runs(backend: Backend) -> list[dict[str, Any]]:
    runs = sorted(read_ledger(backend.store)[0], key=lambda r: r["created"], reverse=True)
    runs = runs[:RECENT_RUNS]
    statuses = {d["jobId"]: d["status"] for d in backend.describe([r["jobId"] for r in runs])}
    return [
        {
            "name": r["name"],
            "inputs": r["n"],
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["created"] / 1000)),
            "status": statuses.get(r["jobId"], "UNKNOWN"),
        }
        for r in runs
    ]


class Dashboard:
    """The live dashboard widget of a backend (the current one by default)."""

    def __init__(self, backend: Backend | None = None):
        import ipywidgets as w

        self.backend = backend or current()
        self.id = f"dashboard-{id(self)}"  # what the watcher knows it by
        self.widget = w.HTML()
        self.board: Board | None = None
        self.refreshes = 0
        self._lock = threading.Lock()
        self.refresh(look(self.backend))
        self.stop = watcher(self.backend).watch(self, self._on_board)

    def snapshot(self, max_age: float = 0) -> Board:
        """What the watcher takes each round (when Batch changed, at most twice a second)."""
        return look(self.backend)

    def _on_board(self, board: Board) -> None:
        self.refresh(board)

    def close(self) -> None:
        """Stop following the backend and close the widget (a dashboard never ends itself)."""
        self.stop()
        self.widget.close()

    def refresh(self, board: Board | None = None) -> None:
        with self._lock:
            self.board = board or look(self.backend)
            value = self.board._repr_html_()
            with self.widget.hold_sync():
                self.widget.value = value
            self.refreshes += 1

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        board = self.board or look(self.backend)
        return with_text(self.widget, repr(board), board._repr_html_(), **kwargs)

    def __repr__(self) -> str:
        return repr(self.board or look(self.backend))


def dashboard(backend: Backend | None = None) -> Dashboard:
    """The live dashboard: compute environments, queues by status, recent runs."""
    return Dashboard(backend)
