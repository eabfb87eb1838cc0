"""Cost before, during and after a run on the local engine: batch.estimate from a measured
sample, budgets that refuse a map (nothing submitted) or cancel its rest, and what each
input cost."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.cost.prices import load_prices
from batchbook.errors import BudgetExceeded, ClientError
from batchbook.functions.backend import Backend
from tests.functions.conftest import calls, mark


@pytest.fixture(scope="module")
def backend(folder_backend: Backend) -> Backend:
    return folder_backend


def hungry(mib: int, folder: str) -> int:
    """Holds ``mib`` MiB for a moment; leaves a mark saying where it ran."""
    mark(folder, "job" if "AWS_BATCH_JOB_ID" in os.environ else "sample")
    block = bytearray(mib << 20)
    time.sleep(0.05)
    return len(block) >> 20


def always_fails(x: int) -> int:
    time.sleep(0.3)
    raise RuntimeError(f"input {x} fails every time")


def test_an_estimate_measures_a_sample_here_and_lists_no_run(backend: Backend, marks: Path) -> None:
    before = len(batch.jobs())
    inputs = [20, 300, 40, 60, 80, 100, 120]
    est = batch.estimate(hungry, inputs, [str(marks)] * 7, memory="128 MiB", sample=3)
    assert calls(marks) == {"sample": 3}  # first, middle and last, each in its interpreter
    assert [m.index for m in est.sample] == [0, 3, 6]
    assert len(batch.jobs()) == before  # no run, no job
    assert est.peak_mib >= 120  # the biggest sampled input held 120 MiB
    assert est.inputs == 7 and est.low < est.high and est.expected == est.high
    assert any("Batch would kill these jobs for memory (OOM)" in w for w in est.warnings)
    text = repr(est)
    assert re.search(r"us-east-1 prices of \d{4}-\d{2}-\d{2}", text)
    assert "from a sample of 3" in text and "BEST_FIT, maxvCpus 256" in text
    assert "<b>Estimate for hungry" in est._repr_html_()
    roomy = batch.estimate(hungry, inputs, [str(marks)] * 7, memory="16 GiB", sample=1)
    assert any("16,384 MiB asked, the sample peaked at" in w for w in roomy.warnings)
    eu = batch.estimate(hungry, [1], [str(marks)], region="eu-west-1", sample=1)
    assert eu.figures.region == "eu-west-1"
    placed = eu.figures.run.placement
    us = load_prices().region("us-east-1")
    assert placed.on_demand_hour > us.instance_hour(placed.name)  # eu-west-1's own prices
    with pytest.raises(ClientError, match="region: no prices for 'mars-1'"):
        batch.estimate(hungry, [1], [str(marks)], region="mars-1")
    with pytest.raises(ClientError, match="sample: 0 is not a whole number"):
        batch.estimate(hungry, [1], [str(marks)], sample=0)


def test_a_map_estimated_above_its_budget_submits_nothing(backend: Backend, marks: Path) -> None:
    runs = len(batch.jobs())
    queued = backend.batch.list_jobs(jobQueue="batchbook", jobStatus="SUCCEEDED")
    with pytest.raises(BudgetExceeded, match=r"budget: the map is estimated at \$0\.\d+ .*"
                       r"above its budget of \$0\.0001; nothing was submitted"):  # fmt: skip
        batch.map(hungry, [1] * 400, [str(marks)] * 400, budget=0.0001)
    assert calls(marks) == {"sample": 3}  # it sampled 3 inputs, here, and ran no job
    assert len(batch.jobs()) == runs
    after = backend.batch.list_jobs(jobQueue="batchbook", jobStatus="SUCCEEDED")
    assert len(after["jobSummaryList"]) == len(queued["jobSummaryList"])
    with pytest.raises(ClientError, match="budget: -1 is not an amount of USD above 0"):
        batch.map(hungry, [1], [str(marks)], budget=-1)


def test_a_budget_reuses_the_last_matching_estimate(backend: Backend, marks: Path) -> None:
    inputs, folders = [5, 6, 7, 8], [str(marks)] * 4
    est = batch.estimate(hungry, inputs, folders, sample=2)
    assert calls(marks) == {"sample": 2}
    job = batch.map(hungry, inputs, folders, budget=est.expected * 2).wait(progress=False)
    assert calls(marks) == {"sample": 2, "job": 4}  # no new sample: the estimate was reused
    spent = job.cost()
    assert spent.estimate is not None and spent.estimate["expected"] == est.expected
    assert spent.budget == est.expected * 2 and spent.total > 0
    assert f"budget ${est.expected * 2:,.4f}" in repr(spent)


def test_the_running_cost_past_the_budget_cancels_the_rest(backend: Backend) -> None:
    """Each input fails in every attempt: the estimate counts one attempt per input, the
    running cost every attempt, so it passes the budget before the retries are spent."""
    est = batch.estimate(always_fails, range(8), chunksize=1, sample=1)
    budget = est.expected * 1.5  # above the estimate: it is submitted
    job = batch.map(always_fails, range(8), chunksize=1, retries=3, budget=budget)
    frame = job.wait(timeout=120, progress=False).to_frame()
    spent = job.cost()
    assert spent.total > budget  # what crossed it...
    assert frame["attempts"].sum() < 8 * 4  # ...stopped the rest before every retry ran
    reasons = {d.get("statusReason", "") for d in backend.describe(job.chunk_job_ids)}
    assert any(r.startswith("budget: $") and "spent (estimated)" in r for r in reasons)
    assert frame["cost"].sum() == pytest.approx(spent.total)


def sleeps_then_marks(seconds: float, marker: str) -> None:
    time.sleep(seconds)
    Path(marker).touch()


def test_a_sample_stops_at_its_time_cap_and_at_once_when_interrupted(tmp_path: Path) -> None:
    import signal
    import threading

    from batchbook.functions.pickling import pickle_function
    from batchbook.functions.sampler import run_sample

    pickled = pickle_function(sleeps_then_marks, set())
    marker = tmp_path / "finished"
    [capped] = run_sample(pickled, [(30, str(marker))], {}, 1, time_cap=0.5)
    assert capped.capped and capped.seconds >= 0.5 and capped.error is None
    interrupt = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))  # Ctrl-C
    interrupt.start()
    with pytest.raises(KeyboardInterrupt):
        run_sample(pickled, [(30, str(marker))] * 2, {}, 2, time_cap=None)
    interrupt.join()
    assert not marker.exists()  # both interpreters were killed, not waited for


def closure(factor: int):  # type: ignore[no-untyped-def]
    def scaled(x: int) -> int:
        return x * factor

    return scaled


def test_estimates_are_kept_apart_by_what_the_function_holds(backend: Backend) -> None:
    from batchbook.functions.estimating import estimate_key
    from batchbook.functions.options import RunOptions
    from batchbook.functions.pickling import pickle_function

    small, big = closure(1), closure(1000)
    keys = {
        estimate_key(pickle_function(f, set()), [(1,)], kw, RunOptions(), "us-east-1")
        for f, kw in [(small, {}), (big, {}), (small, {"x": 1})]
    }
    assert len(keys) == 3  # the same source, other values: other estimates
    again = estimate_key(pickle_function(small, set()), [(1,)], {}, RunOptions(), "us-east-1")
    assert again in keys


def test_retry_failed_takes_a_budget_of_its_own_and_an_executor_none(backend: Backend) -> None:
    first = batch.map(always_fails, range(8), chunksize=1).wait(timeout=120, progress=False)
    assert len(first.exceptions()) == 8
    est = batch.estimate(always_fails, range(8), chunksize=1, sample=1)
    again = first.retry_failed(retries=3, budget=est.expected * 1.5)
    frame = again.wait(timeout=120, progress=False).to_frame()
    assert again.cost().total > est.expected * 1.5
    assert frame["attempts"].sum() < 8 * 4  # cancelled before every retry ran
    with pytest.raises(ClientError, match=r"budget: batch\.map and MapJob\.retry_failed take"):
        batch.Executor(budget=1)
