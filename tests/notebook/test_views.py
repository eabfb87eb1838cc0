"""The live job view, its plots and the dashboard: the widget models after real runs on a
real service (built in this process: ipywidgets needs no front end for its models), and
their display bundles and comm traffic in a real kernel."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.functions.backend import Backend
from batchbook.functions.mapjob import MapJob
from batchbook.notebook.dashboard import Dashboard, look
from batchbook.notebook.views import JobView, parse_indices
from tests.functions.conftest import until
from tests.notebook.conftest import Kernel


def gated(x: int, gate: str) -> int:
    while not os.path.exists(gate):  # on the worker: until the test opens the gate
        time.sleep(0.02)
    return x


def sevens_fail(x: int) -> int:
    if x % 7 == 3:
        raise ValueError(f"bad {x}")
    return x * x


def says_its_attempt(x: int) -> int:
    attempt = os.environ["AWS_BATCH_JOB_ATTEMPT"]
    print(f"attempt {attempt} says hello")
    if attempt == "1":
        raise RuntimeError("the first attempt fails")
    return x


def final_seen(job: MapJob) -> threading.Event:
    """Set once the watcher delivered the job's final snapshot (after the views watching it)."""
    seen = threading.Event()
    job.watch(lambda snap: seen.set() if snap.final else None)
    return seen


def rows_in(view: JobView) -> list[list[str]]:
    body = view.live.value.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("</tr>") if row]


def test_a_view_follows_a_map_to_its_end_and_then_shows_the_frame(
    backend: Backend, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    job = batch.map(gated, range(6), [str(gate)] * 6, chunksize=1, name="followed")
    view = JobView(job)
    assert "MapJob followed" in view.live.value and "running:" in view.live.value
    assert view.results_w.value == ""
    seen = final_seen(job)
    gate.touch()
    assert seen.wait(120)
    assert view.snap is not None and view.snap.final
    assert "finished: 6/6 finished" in view.live.value and "succeeded 6" in view.live.value
    assert "<b>Results</b>" in view.results_w.value and "<table" in view.results_w.value
    assert view._unwatch is None  # final: the view stopped following
    # the cost panel: six attempts of under a minute, each billed its 60 s, dated prices
    spent = job.cost()
    assert spent.basis is not None
    assert spent.total == pytest.approx(6 * 60 * spent.basis.hourly / 3600)
    assert f"${spent.total:,.4f} so far" in view.cost.value
    assert re.search(r"us-east-1 prices of \d{4}-\d{2}-\d{2}", view.cost.value)


def test_the_why_button_explains_a_map_that_waits(backend: Backend) -> None:
    job = batch.map(sevens_fail, range(3), vcpus=64, name="too-big")
    view = JobView(job)
    until(backend, lambda: job.why_waiting() is not None)
    view.why_w.click()
    assert "too-big" in view.why.value and "it asks for 64 vCPU" in view.why.value
    assert "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in view.why.value
    job.cancel()


def test_the_table_pages_sorts_and_filters(backend: Backend) -> None:
    job = batch.map(sevens_fail, range(120), chunksize=1).wait(progress=False)
    view = JobView(job)
    assert "page 1 of 3 · 120 all · by input" in view.live.value
    assert [r[0] for r in rows_in(view)] == [str(i) for i in range(50)]
    assert view.prev_w.disabled and not view.next_w.disabled
    view.next_w.click()
    assert "page 2 of 3" in view.live.value and rows_in(view)[0][0] == "50"
    view.next_w.click()
    assert [r[0] for r in rows_in(view)] == [str(i) for i in range(100, 120)]
    assert view.next_w.disabled
    view.status_w.value = "FAILED"  # a filter goes back to the first page
    failed = [str(i) for i in range(120) if i % 7 == 3]
    assert "page 1 of 1 · 17 failed" in view.live.value
    assert [r[0] for r in rows_in(view)] == failed
    assert all(r[1] == "FAILED" and r[5].startswith("ValueError: bad ") for r in rows_in(view))
    view.descending_w.value = True
    assert [r[0] for r in rows_in(view)] == failed[::-1]
    view.status_w.value = "all"
    view.sort_w.value = "status"
    view.descending_w.value = False
    assert rows_in(view)[0][1] == "FAILED" and rows_in(view)[17][1] == "SUCCEEDED"


def test_the_buttons_cancel_selected_cancel_all_and_retry_failed(
    backend: Backend, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    job = batch.map(gated, range(6), [str(gate)] * 6, chunksize=1, name="buttons")
    view = JobView(job)
    view.cancel_selected_w.click()
    assert "select the inputs to cancel first" in view.live.value
    view.select_w.value = "1-2, 9"
    assert "select: 9 is outside the inputs 0 to 5" in view.live.value
    view.select_w.value = "1-2"
    view.cancel_selected_w.click()
    assert "cancelled 2 inputs: 1-2" in view.live.value
    until(
        backend,
        lambda: {r.status for r in job.input_rows(job.snapshot(max_age=0))[1:3]} == {"FAILED"},
    )
    rows = job.input_rows(job.snapshot(max_age=0))
    assert [r.status for r in rows].count("FAILED") == 2  # only those two
    view.cancel_all_w.click()
    assert "cancelled every input that had not finished" in view.live.value
    job.wait(progress=False)
    assert job.status() == {"FAILED": 6}
    gate.touch()
    view.retry_w.click()
    assert "retrying 6 failed inputs as buttons" in view.live.value
    seen = final_seen(job)
    assert seen.wait(120)
    assert job.results() == list(range(6))
    assert "succeeded 6" in view.live.value


def test_the_log_tail_switches_attempts(backend: Backend) -> None:
    job = batch.map(says_its_attempt, [5], chunksize=1, retries=1).wait(progress=False)
    view = JobView(job)
    view.select_w.value = "0"
    assert [label for label, _ in view.attempt_w.options] == ["latest", "1", "2"]
    assert (
        "input 0, attempt 2 of 2" in view.live.value and "attempt 2 says hello" in view.live.value
    )
    view.attempt_w.value = 1
    assert "attempt 1 of 2" in view.live.value and "attempt 1 says hello" in view.live.value
    assert "attempt 2 says hello" not in view.live.value
    view.attempt_w.value = 0  # latest
    assert "attempt 2 says hello" in view.live.value
    view.plots_w.value = True  # the timeline has a bar for each attempt of the input
    succeeded, failed = view.plots.children[0].data
    assert (list(succeeded.y), list(failed.y)) == ([0], [0])


def test_plots_draw_lanes_or_inputs_running_over_time(backend: Backend) -> None:
    job = batch.map(sevens_fail, range(120), chunksize=1).wait(progress=False)
    view = JobView(job)
    view.plots_w.value = True
    timeline, durations = view.plots.children
    succeeded, failed = timeline.data
    assert (len(succeeded.y), len(failed.y)) == (103, 17) and succeeded.orientation == "h"
    assert sorted(failed.y) == [i for i in range(120) if i % 7 == 3]
    assert (len(durations.data[0].x), len(durations.data[1].x)) == (103, 17)
    many = batch.map(sevens_fail, range(700), chunksize=50).wait(progress=False)
    wide = JobView(many)
    wide.plots_w.value = True
    succeeded, failed = wide.plots.children[0].data
    assert succeeded.orientation == "v" and len(succeeded.y) == 120  # time steps, not lanes
    assert max(succeeded.y) >= 1 and max(failed.y) >= 1
    wide.plots_w.value = False
    assert wide.plots.children == ()


def test_indices_parse_as_users_type_them() -> None:
    assert parse_indices(" 3, 7-9 ,3", 10) == [3, 7, 8, 9]
    assert parse_indices("", 10) == []
    for bad, says in [
        ("x", "'x' is not an input"),
        ("4-2", "4-2 is outside"),
        ("10", "10 is outside"),
    ]:
        try:
            parse_indices(bad, 10)
        except ValueError as e:
            assert says in str(e)
        else:
            raise AssertionError(bad)


def test_the_dashboard_shows_environments_queues_and_recent_runs(
    backend: Backend, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    job = batch.map(gated, range(4), [str(gate)] * 4, chunksize=1, name="on-the-board")
    until(backend, lambda: job.snapshot(max_age=0).running == 2)  # the queue has 2 vCPUs
    board = look(backend)
    (environment,) = board.environments
    assert environment["in_use"] == 2 and environment["max"] == os.cpu_count()
    (queue,) = board.queues
    assert (
        queue["name"] == "batchbook"
        and queue["counts"]["RUNNING"] + queue["counts"]["PENDING"] >= 1
    )
    assert board.runs[0]["name"] == "on-the-board" and board.runs[0]["inputs"] == 4
    assert "vCPUs in use" in board._repr_html_() and "2/" in repr(board)
    live = Dashboard(backend)
    assert "on-the-board" in live.widget.value
    gate.touch()
    job.wait(progress=False)
    until(backend, lambda: live.board is not None and live.board.environments[0]["in_use"] == 0)
    assert "SUCCEEDED" in live.widget.value or "succeeded" in live.widget.value
    live.close()


def test_outside_a_kernel_a_map_shows_as_text_and_html(backend: Backend) -> None:
    job = batch.map(abs, [-1, 2]).wait(progress=False)
    bundle = job._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert "succeeded 2" in bundle["text/plain"] and "<table>" in bundle["text/html"]


def test_in_a_kernel_the_display_bundle_has_the_widget_and_both_text_forms(
    kernel: Kernel,
) -> None:
    out = kernel.ok("job = batch.map(abs, [-1, 2])\njob.wait(progress=False)\njob")
    assert out.result is not None
    assert {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"} <= set(
        out.result
    )
    assert "succeeded 2" in out.result["text/plain"] and "<table>" in out.result["text/html"]
    waited = kernel.ok("other = batch.map(abs, [3])\nother.wait()")  # wait() shows the view
    assert any("application/vnd.jupyter.widget-view+json" in d for d in waited.displays)
    board = kernel.ok("%batch dashboard")
    assert board.result is not None and "application/vnd.jupyter.widget-view+json" in board.result
    assert board.result["text/plain"].startswith("<batchbook dashboard: ")


def test_the_updater_sends_one_message_a_refresh_at_most_once_a_second(kernel: Kernel) -> None:
    """A 10,000-child array, watched for a dozen watcher rounds while it runs, then cancelled:
    the view's comm traffic is one message per refresh, and at most a refresh a second."""
    kernel.ok(
        "import threading\n"
        "from batchbook.notebook.views import JobView\n"
        "from batchbook.functions.watcher import watcher\n"
        "big = batch.map(abs, range(10_000), chunksize=1)\n"
        "view = JobView(big)\n"
        "rounds = watcher(big.backend).rounds\n"
        "display(view)"
    )
    model = kernel.value("view.live.model_id")
    msg = kernel.start(
        "_enough, _final = threading.Event(), threading.Event()\n"
        "big.watch(lambda s: _enough.set() if watcher(big.backend).rounds - rounds >= 12 else None)\n"
        "assert _enough.wait(120)\n"
        "big.cancel()\n"
        "big.wait(progress=False)\n"  # then until the watcher delivered the final snapshot
        "big.watch(lambda snap: _final.set() if snap.final else None)\n"
        "assert _final.wait(60)"
    )
    out = kernel.collect(msg, timeout=300)
    assert out.error is None, out.traceback
    updates = sum(1 for comm_id, method in out.comms if comm_id == model and method == "update")
    refreshes, rounds, final = kernel.value(
        "[view.refreshes, watcher(big.backend).rounds - rounds, view.snap.final]"
    )
    assert final is True
    assert 1 <= updates <= refreshes  # a refresh is one message (or none if nothing changed)
    assert refreshes <= rounds // 2 + 2  # at most one a second, from rounds at most twice one
