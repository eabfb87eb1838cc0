"""Cost before, during and after a run on the local engine: batch.estimate from a measured
sample, budgets that refuse a map (nothing submitted) or cancel its rest, and what each
input cost."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.errors import BudgetExceeded, ClientError
from batchbook.functions.backend import Backend
from batchbook.server.discovery import stop_service
from tests.functions.conftest import calls, mark
from tests.server.conftest import start


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    state = tmp_path_factory.mktemp("cost") / "state"
    start(state)
    yield batch.use(state_dir=state)
    stop_service(state)


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
    assert eu.figures.region == "eu-west-1" and eu.high > est.high / 100
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
