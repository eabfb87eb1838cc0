"""Job lifecycle, scheduling and capacity, driven with a fake clock and no processes."""

from __future__ import annotations

from batchbook.engine import Engine
from tests.engine.conftest import Driver, make_ce, make_jobdef, make_queue


def test_single_job_walks_every_status_with_timestamps(driver: Driver) -> None:
    job = driver.submit()
    assert driver.status(job) == "SUBMITTED"
    created = driver.detail(job)["createdAt"]
    driver.clock.advance(1)
    [start] = driver.engine.step()
    assert driver.status(job) == "STARTING"
    driver.clock.advance(1)
    driver.engine.attempt_started(start.task_id, 4242)
    assert driver.status(job) == "RUNNING"
    driver.clock.advance(3)
    driver.engine.attempt_exited(start.task_id, 0)
    detail = driver.detail(job)
    assert detail["status"] == "SUCCEEDED"
    assert detail["createdAt"] == created
    assert detail["stoppedAt"] - detail["startedAt"] == 3000
    assert detail["attempts"][0]["container"]["exitCode"] == 0
    assert detail["attempts"][0]["container"]["logStreamName"].startswith("jd/default/")
    changes = driver.engine.take_changes()
    statuses = [status for _, jid, status, _ in changes.events if jid == job]
    assert statuses == ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]


def test_nonzero_exit_fails_with_essential_container_reason(driver: Driver) -> None:
    job = driver.submit()
    driver.step()
    driver.finish(job, 2)
    detail = driver.detail(job)
    assert detail["status"] == "FAILED"
    assert detail["statusReason"] == "Essential container in task exited"
    assert detail["attempts"][0]["container"]["exitCode"] == 2


def test_capacity_by_vcpu_is_never_exceeded(driver: Driver) -> None:
    # ce has 4 vCPUs, the job definition asks for 1 each
    jobs = [driver.submit(name=f"j{i}") for i in range(10)]
    driver.step()
    assert len(driver.running) == 4
    driver.finish(jobs[0])
    driver.step()
    assert len(driver.running) == 4
    assert driver.status(jobs[4]) == "RUNNING"  # FIFO: the next one in submission order
    assert driver.status(jobs[5]) == "RUNNABLE"


def test_capacity_by_memory_and_gpu(engine: Engine, driver: Driver) -> None:
    make_ce(
        engine,
        "small",
        vcpus=16,
        memory=1000,
        tags={"batchbook:memoryMiB": "1000", "batchbook:gpus": "1"},
    )
    make_queue(engine, "sq", ("small",))
    make_jobdef(engine, "big", memory=400)
    engine.register_job_definition(
        {
            "jobDefinitionName": "gpujob",
            "type": "container",
            "containerProperties": {
                "image": "x",
                "command": ["true"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "10"},
                    {"type": "GPU", "value": "1"},
                ],
            },
        }
    )
    mem = [driver.submit(name=f"m{i}", queue="sq", jobdef="big") for i in range(3)]
    gpu = [driver.submit(name=f"g{i}", queue="sq", jobdef="gpujob") for i in range(2)]
    driver.step()
    running = set(driver.running_ids())
    assert running == {mem[0], mem[1], gpu[0]}  # 2 x 400 MiB fit in 1000, one GPU


def test_job_that_can_never_fit_stays_runnable_with_a_reason(
    engine: Engine, driver: Driver
) -> None:
    make_jobdef(engine, "huge", vcpus=64)
    job = driver.submit(jobdef="huge")
    small = driver.submit(name="small")
    driver.step()
    assert driver.status(job) == "RUNNABLE"
    assert driver.status(small) == "RUNNING"  # the misfit does not block the queue
    reason = driver.detail(job)["statusReason"]
    assert reason.startswith("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
    assert "64 vCPU" in reason
    assert "MISCONFIGURATION" in engine.why_not_running(job)


def test_higher_priority_queue_wins_under_contention(engine: Engine, driver: Driver) -> None:
    make_ce(engine, "one", vcpus=1)
    make_queue(engine, "low", ("one",), priority=1)
    make_queue(engine, "high", ("one",), priority=10)
    lows = [driver.submit(name=f"low{i}", queue="low") for i in range(3)]
    highs = [driver.submit(name=f"high{i}", queue="high") for i in range(3)]
    order = driver.run_one_by_one(6)
    assert order == highs + lows


def test_compute_environments_are_tried_in_queue_order(engine: Engine, driver: Driver) -> None:
    make_ce(engine, "first", vcpus=1)
    make_ce(engine, "second", vcpus=2)
    make_queue(engine, "ordered", ("first", "second"))
    jobs = [driver.submit(name=f"j{i}", queue="ordered") for i in range(4)]
    driver.step()
    ces = [driver.engine.jobs[j].ce for j in jobs]
    assert ces == ["first", "second", "second", None]
    env = {a.job_id: a.env for a in driver.started}
    assert env[jobs[0]]["AWS_BATCH_CE_NAME"] == "first"
    assert env[jobs[1]]["AWS_BATCH_JQ_NAME"] == "ordered"


def test_disabled_compute_environment_and_queue_run_nothing(engine: Engine, driver: Driver) -> None:
    engine.update_compute_environment({"computeEnvironment": "ce", "state": "DISABLED"})
    job = driver.submit()
    driver.step()
    assert driver.status(job) == "RUNNABLE"
    assert "no ENABLED compute environment" in engine.why_not_running(job)
    engine.update_compute_environment({"computeEnvironment": "ce", "state": "ENABLED"})
    driver.step()
    assert driver.status(job) == "RUNNING"


def test_environment_and_ref_parameters(engine: Engine, driver: Driver) -> None:
    engine.register_job_definition(
        {
            "jobDefinitionName": "params",
            "type": "container",
            "parameters": {"greeting": "hello", "who": "world"},
            "containerProperties": {
                "image": "x",
                "command": ["echo", "Ref::greeting", "Ref::who", "Ref::missing", "x-Ref::who"],
                "vcpus": 1,
                "memory": 128,
                "environment": [{"name": "A", "value": "from-def"}, {"name": "B", "value": "b"}],
            },
        }
    )
    job = driver.submit(
        jobdef="params",
        parameters={"who": "batch"},
        arrayProperties={"size": 2},
        containerOverrides={"environment": [{"name": "A", "value": "override"}]},
    )
    driver.step()
    start = next(a for a in driver.started if a.job_id == f"{job}:1")
    assert start.argv == ("echo", "hello", "batch", "Ref::missing", "x-batch")
    assert start.env["A"] == "override"
    assert start.env["B"] == "b"
    assert start.env["AWS_BATCH_JOB_ID"] == f"{job}:1"
    assert start.env["AWS_BATCH_JOB_ARRAY_INDEX"] == "1"
    assert start.env["AWS_BATCH_JOB_ATTEMPT"] == "1"
    assert driver.detail(f"{job}:1")["container"]["command"][1] == "hello"


def test_resource_overrides_change_placement(engine: Engine, driver: Driver) -> None:
    job = driver.submit(
        containerOverrides={"resourceRequirements": [{"type": "VCPU", "value": "4"}]}
    )
    other = driver.submit(name="other")
    driver.step()
    assert driver.running_ids() == [job]
    assert driver.status(other) == "RUNNABLE"
    assert {"type": "VCPU", "value": "4"} in driver.detail(job)["container"]["resourceRequirements"]


def test_retried_attempt_gets_next_attempt_number(driver: Driver) -> None:
    job = driver.submit(retryStrategy={"attempts": 3})
    driver.step()
    driver.finish(job, 1)
    driver.step()
    driver.finish(job, 1)
    driver.step()
    assert [a.attempt for a in driver.started] == [1, 2, 3]
    assert driver.started[-1].env["AWS_BATCH_JOB_ATTEMPT"] == "3"
    driver.finish(job, 0)
    detail = driver.detail(job)
    assert detail["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in detail["attempts"]] == [1, 1, 0]
    assert len({a["container"]["logStreamName"] for a in detail["attempts"]}) == 3
