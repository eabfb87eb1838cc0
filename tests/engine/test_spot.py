"""Spot interruptions rehearsed by the engine, on a fake clock: the notice as EC2 words it
at the drawn time, SIGTERM 30 s before the notice ends and SIGKILL at its end, the lost
host's reason, a retry that Batch's rules allow, and the same draws in every run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from batchbook.engine import Engine, StopAttempt, WriteNotice
from batchbook.engine.spot import NOTICE_ENV, interruption
from batchbook.errors import ClientError
from tests.engine.conftest import Driver, FakeClock, make_ce, make_jobdef, make_queue

TAGS = {"batchbook:spotInterruptionsPerHour": "60", "batchbook:spotSeed": "42"}


def spot_ce(engine: Engine, tags: dict[str, str]) -> None:
    engine.create_compute_environment(
        {
            "computeEnvironmentName": "spotty",
            "type": "MANAGED",
            "computeResources": {"type": "SPOT", "minvCpus": 0, "maxvCpus": 4,
                                 "subnets": ["subnet-local"], "instanceRole": "ecsInstanceRole"},
            "tags": tags,
        }
    )  # fmt: skip
    make_queue(engine, "sq", ("spotty",))


def test_an_attempt_gets_the_notice_then_sigterm_then_sigkill_and_is_retried(
    engine: Engine, driver: Driver, clock: FakeClock
) -> None:
    spot_ce(engine, TAGS)
    make_jobdef(engine, "retried", retryStrategy={"attempts": 3})
    job = driver.submit(name="sim", queue="sq", jobdef="retried")
    [start] = driver.step()
    plan = interruption(engine.registry.ces["spotty"], "sim/None/None/1")
    assert plan is not None and plan.notice_ms == 120_000
    assert start.env[NOTICE_ENV].endswith(f"{start.task_id}-instance-action.json")
    started = clock()
    clock.now = started + plan.after_ms - 1
    assert engine.step() == []  # not yet
    clock.now = started + plan.after_ms
    [notice] = engine.step()
    assert isinstance(notice, WriteNotice) and notice.path == start.env[NOTICE_ENV]
    body = json.loads(notice.text)
    assert body["action"] == "terminate" and body["time"].endswith("Z")  # EC2's document
    clock.now = started + plan.after_ms + 90_000  # 30 s before the two minutes end
    [stop] = engine.step()
    assert isinstance(stop, StopAttempt) and stop.grace_ms == 30_000  # then SIGKILL
    assert stop.reason == f"Host EC2 (instance {plan.instance_id}) terminated."
    assert plan.instance_id.startswith("i-") and len(plan.instance_id) == 19
    del driver.running[start.task_id]
    engine.attempt_exited(start.task_id, 143)  # SIGTERM, as the fork server reports it
    assert driver.status(job) == "RUNNABLE"  # a lost host: Batch retries it
    attempt = driver.detail(job)["attempts"][0]
    assert attempt["statusReason"] == stop.reason
    assert attempt["container"]["reason"] == stop.reason  # as any lost host: no exit code
    assert "exitCode" not in attempt["container"]


def reclaim(engine: Engine, driver: Driver, clock: FakeClock, jobdef: str) -> tuple[str, str]:
    """A job on the rehearsing environment, run to its spot SIGTERM: (job id, task id)."""
    job = driver.submit(name="sim", queue="sq", jobdef=jobdef)
    [start] = driver.step()
    plan = interruption(engine.registry.ces["spotty"], "sim/None/None/1")
    assert plan is not None
    clock.now += plan.term_after_ms
    assert any(isinstance(a, StopAttempt) for a in engine.step())
    del driver.running[start.task_id]
    return job, start.task_id


def test_evaluate_on_exit_rules_see_a_spot_loss_as_a_lost_host(
    engine: Engine, driver: Driver, clock: FakeClock
) -> None:
    spot_ce(engine, TAGS)
    rules = [{"onReason": "Host EC2*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]
    make_jobdef(engine, "ruled", retryStrategy={"attempts": 3, "evaluateOnExit": rules})
    job, task = reclaim(engine, driver, clock, "ruled")
    engine.attempt_exited(task, 143)
    assert driver.status(job) == "RUNNABLE"


def test_a_job_terminated_while_its_instance_goes_is_not_retried(
    engine: Engine, driver: Driver, clock: FakeClock
) -> None:
    spot_ce(engine, TAGS)
    make_jobdef(engine, "retried", retryStrategy={"attempts": 3})
    job, task = reclaim(engine, driver, clock, "retried")
    engine.terminate_job({"jobId": job, "reason": "stop it"})  # within the 30 s of grace
    engine.attempt_exited(task, 143)
    assert driver.status(job) == "FAILED"


def test_the_same_seed_draws_the_same_interruptions_and_another_seed_others(
    engine: Engine,
) -> None:
    spot_ce(engine, TAGS)
    ce = engine.registry.ces["spotty"]
    draws = [interruption(ce, f"sim/{i}/None/1") for i in range(5)]
    assert draws == [interruption(ce, f"sim/{i}/None/1") for i in range(5)]
    other = {**ce, "tags": {**TAGS, "batchbook:spotSeed": "43"}}
    assert draws != [interruption(other, f"sim/{i}/None/1") for i in range(5)]
    on_demand = {**ce, "computeResources": {**ce["computeResources"], "type": "EC2"}}
    assert interruption(on_demand, "sim/0/None/1") is None  # only spot is reclaimed
    short = {**ce, "tags": {**TAGS, "batchbook:spotNoticeSeconds": "10"}}
    plan = interruption(short, "sim/0/None/1")
    assert plan is not None and plan.term_after_ms == plan.after_ms and plan.grace_ms == 10_000


@pytest.mark.parametrize(
    "tags, message",
    [
        ({"batchbook:spotInterruptionsPerHour": "often"}, "spotInterruptionsPerHour: 'often'"),
        ({"batchbook:spotNoticeSeconds": "-1"}, "spotNoticeSeconds: '-1' is not a number from 0"),
        ({"batchbook:spotNoticeSeconds": "inf"}, "spotNoticeSeconds: 'inf' is not a number from 0"),
        ({"batchbook:spotCapacityVcpus": "1.5"}, "spotCapacityVcpus: '1.5' is not a whole"),
    ],
)
def test_bad_rehearsal_tags_are_refused_by_name(
    engine: Engine, tags: dict[str, Any], message: str
) -> None:
    with pytest.raises(ClientError, match=message):
        make_ce(engine, "bad", 4, tags=tags)
