"""The engine checks itself: a transition Batch never makes raises with the job's history,
and the invariants (run after every step by the Driver) notice a state that does not hold."""

from __future__ import annotations

import pytest

from batchbook.engine.resources import Resources
from batchbook.engine.transitions import ARRAY_PARENT, JOB
from batchbook.errors import ServerError
from batchbook.vocabulary import FINAL, STATUSES
from tests.engine.conftest import Driver


def test_the_tables_know_every_status_and_final_is_final() -> None:
    assert set(JOB) == set(STATUSES)
    assert set(ARRAY_PARENT) == {"SUBMITTED", "PENDING", "SUCCEEDED", "FAILED"}
    for table in (JOB, ARRAY_PARENT):
        for status in FINAL:
            assert table[status] == frozenset()
        for targets in table.values():
            assert targets <= set(table)


@pytest.mark.parametrize(
    ("walk", "illegal"),
    [
        (["PENDING", "RUNNABLE"], "RUNNING"),  # skipping STARTING
        (["PENDING"], "SUCCEEDED"),  # a job that never ran
        (["PENDING", "FAILED"], "RUNNABLE"),  # out of a final status
    ],
)
def test_a_transition_batch_never_makes_raises_with_the_history(
    driver: Driver, walk: list[str], illegal: str
) -> None:
    job = driver.engine.jobs[driver.submit()]
    for status in walk:
        driver.engine._transition(job, status, None)
    with pytest.raises(ServerError, match=rf"{walk[-1]} -> {illegal} is not a Batch transition"):
        driver.engine._transition(job, illegal, None)
    assert job.status == walk[-1]  # refused before anything changed


def test_an_array_parent_never_runs(driver: Driver) -> None:
    parent = driver.engine.jobs[driver.submit(arrayProperties={"size": 2})]
    driver.engine._transition(parent, "PENDING", None)
    with pytest.raises(ServerError, match=r"an array parent.*created at"):
        driver.engine._transition(parent, "RUNNABLE", None)


def test_the_history_names_each_attempt(driver: Driver) -> None:
    job_id = driver.submit(retryStrategy={"attempts": 2})
    driver.step()
    driver.finish(job_id, 3)  # retried: RUNNABLE again
    job = driver.engine.jobs[job_id]
    with pytest.raises(ServerError) as info:
        driver.engine._transition(job, "SUCCEEDED", None)
    assert "attempt 1: Essential container in task exited (exit code 3)" in str(info.value)
    assert "now RUNNABLE" in str(info.value)


def test_invariants_notice_a_wrong_summary_and_wrong_capacity(driver: Driver) -> None:
    engine = driver.engine
    parent_id = driver.submit(arrayProperties={"size": 3})
    driver.step()
    engine.check_invariants()
    parent = engine.jobs[parent_id]
    parent.summary["RUNNING"] += 1
    with pytest.raises(ServerError, match="statusSummary"):
        engine.check_invariants()
    parent.summary["RUNNING"] -= 1
    engine._used["ce"] = engine._used["ce"] + Resources(1000, 0, 0)
    with pytest.raises(ServerError, match="counted in use, but the attempts in flight hold"):
        engine.check_invariants()
    engine._used["ce"] = engine._used["ce"] - Resources(1000, 0, 0)
    child = parent.children[0]
    task = child.task
    child.task = None
    with pytest.raises(ServerError, match="STARTING or RUNNING"):
        engine.check_invariants()
    child.task = task
    engine.check_invariants()
