"""Multi-node parallel jobs in the pure engine: node ranges, the main node first, the job
finished by the main node, retries of the whole job, cancel, terminate, timeout, reload."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Driver, FakeClock, make_ce, make_queue

from batchbook.engine import Engine, EngineConfig, Host, StopAttempt
from batchbook.errors import ClientError
from batchbook.vocabulary import MAIN_NODE_EXITED, TIMEOUT_REASON


def container(command: str = "main", vcpus: int = 1, memory: int = 256) -> dict[str, Any]:
    return {
        "image": "python:3.11",
        "command": ["python", "-c", command],
        "resourceRequirements": [
            {"type": "VCPU", "value": str(vcpus)},
            {"type": "MEMORY", "value": str(memory)},
        ],
    }


def register_mnp(
    engine: Engine, num_nodes: int = 3, main: int = 0, ranges: list[Any] | None = None, **kw: Any
) -> None:
    engine.register_job_definition(
        {
            "jobDefinitionName": "mnp",
            "type": "multinode",
            "nodeProperties": {
                "numNodes": num_nodes,
                "mainNode": main,
                "nodeRangeProperties": ranges
                or [
                    {"targetNodes": "0", "container": container("main", vcpus=2)},
                    {"targetNodes": "1:", "container": container("worker")},
                ],
            },
            **kw,
        }
    )


@pytest.fixture
def mnp(engine: Engine) -> Engine:
    register_mnp(engine)
    return engine


def test_main_node_first_then_the_others_each_with_its_resources_and_environment(
    mnp: Engine, driver: Driver
) -> None:
    job = driver.submit(jobdef="mnp")
    started = driver.step()
    assert [a.job_id for a in started] == [f"{job}#0"]  # the main node alone first
    assert started[0].vcpu_milli == 2000 and started[0].argv[-1] == "main"
    assert driver.status(job) == "RUNNING" and driver.status(f"{job}#1") == "RUNNABLE"
    # 4 vCPUs: the main takes 2, each child 1
    later = driver.step()
    assert sorted(a.job_id for a in later) == [f"{job}#1", f"{job}#2"]
    assert {a.vcpu_milli for a in later} == {1000} and {a.argv[-1] for a in later} == {"worker"}
    env = {a.job_id: a.env for a in [*started, *later]}
    assert env[f"{job}#0"]["AWS_BATCH_JOB_NODE_INDEX"] == "0"
    assert env[f"{job}#2"]["AWS_BATCH_JOB_NODE_INDEX"] == "2"
    assert {e["AWS_BATCH_JOB_NUM_NODES"] for e in env.values()} == {"3"}
    assert {e["AWS_BATCH_JOB_MAIN_NODE_INDEX"] for e in env.values()} == {"0"}
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in env[f"{job}#0"]
    assert env[f"{job}#1"]["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "127.0.0.1"
    assert env[f"{job}#1"]["AWS_BATCH_JOB_ID"] == f"{job}#1"
    detail = driver.detail(f"{job}#2")
    assert detail["nodeDetails"] == {"nodeIndex": 2, "isMainNode": False}
    parent = driver.detail(job)
    assert parent["nodeProperties"]["numNodes"] == 3 and parent["nodeProperties"]["mainNode"] == 0
    assert "container" not in parent and "nodeDetails" not in parent


def test_the_main_node_decides_and_the_others_are_stopped(mnp: Engine, driver: Driver) -> None:
    job = driver.submit(jobdef="mnp")
    driver.step()
    driver.step()
    driver.finish(f"{job}#1", 0)  # a child that exits on its own: nothing else happens
    assert driver.status(f"{job}#1") == "SUCCEEDED" and driver.status(job) == "RUNNING"
    driver.finish(f"{job}#0", 3)
    assert driver.status(job) == "FAILED"  # the main node's exit code decides
    assert driver.detail(job)["attempts"][0]["container"]["exitCode"] == 3
    driver.step()
    [stop] = [s for s in driver.stops if s.task_id in driver.running]
    assert driver.running[stop.task_id].job_id == f"{job}#2" and stop.reason == MAIN_NODE_EXITED
    driver.finish(f"{job}#2", 143)
    assert driver.detail(f"{job}#2")["statusReason"] == MAIN_NODE_EXITED


def test_a_success_of_the_main_node_is_the_jobs_and_dependents_start(
    mnp: Engine, driver: Driver
) -> None:
    job = driver.submit(jobdef="mnp")
    after = driver.submit(dependsOn=[{"jobId": job}])
    driver.step()
    driver.step()
    driver.finish(f"{job}#0", 0)
    assert driver.status(job) == "SUCCEEDED"
    detail = driver.detail(job)
    assert detail["startedAt"] == driver.detail(f"{job}#0")["startedAt"]
    assert detail["stoppedAt"] == driver.detail(f"{job}#0")["stoppedAt"]
    driver.step()
    assert driver.status(after) == "RUNNING"


def test_a_retried_main_node_restarts_every_node(engine: Engine, driver: Driver) -> None:
    register_mnp(engine, retryStrategy={"attempts": 2})
    job = driver.submit(jobdef="mnp")
    driver.step()
    driver.step()
    driver.finish(f"{job}#1", 1)  # a child's failure is not retried on its own
    assert driver.status(f"{job}#1") == "FAILED"
    driver.finish(f"{job}#0", 1)  # the main's is: the whole job's next attempt
    assert driver.status(job) == "RUNNABLE" and driver.status(f"{job}#0") == "RUNNABLE"
    assert driver.status(f"{job}#1") == "PENDING"
    driver.finish(f"{job}#2", 143)  # stopped for the next attempt
    assert driver.status(f"{job}#2") == "PENDING"
    started = driver.step()
    assert [a.job_id for a in started] == [f"{job}#0"] and started[0].attempt == 2
    later = driver.step()
    assert sorted(a.job_id for a in later) == [f"{job}#1", f"{job}#2"]
    assert {a.attempt for a in later} == {2}
    driver.finish(f"{job}#0", 0)
    assert driver.status(job) == "SUCCEEDED" and len(driver.detail(job)["attempts"]) == 2


def test_cancel_acts_before_the_main_node_starts_terminate_after(
    mnp: Engine, driver: Driver
) -> None:
    first = driver.submit(jobdef="mnp")
    mnp.cancel_job({"jobId": first, "reason": "not now"})
    assert {driver.status(f"{first}#{i}") for i in range(3)} == {"FAILED"}
    assert driver.status(first) == "FAILED" and driver.detail(first)["isCancelled"]
    job = driver.submit(jobdef="mnp")
    driver.step()
    mnp.cancel_job({"jobId": job, "reason": "too late"})  # the main node runs: no effect
    assert driver.status(job) == "RUNNING" and driver.status(f"{job}#1") == "RUNNABLE"
    mnp.terminate_job({"jobId": job, "reason": "stop it"})
    assert driver.status(f"{job}#1") == "FAILED"  # it never ran
    driver.finish(f"{job}#0", 143)
    assert driver.status(job) == "FAILED" and driver.detail(job)["statusReason"] == "stop it"


def test_the_timeout_applies_to_the_whole_job(
    engine: Engine, driver: Driver, clock: FakeClock
) -> None:
    register_mnp(engine, timeout={"attemptDurationSeconds": 5})
    job = driver.submit(jobdef="mnp")
    driver.step()
    driver.step()
    clock.advance(6)
    driver.step()
    stopped = {
        driver.running[s.task_id].job_id for s in driver.stops if s.task_id in driver.running
    }
    assert stopped == {f"{job}#0"}  # the children carry no timeout of their own
    driver.finish(f"{job}#0", 143)
    assert driver.detail(job)["statusReason"] == TIMEOUT_REASON


def test_a_reloaded_engine_keeps_the_nodes(mnp: Engine, driver: Driver, clock: FakeClock) -> None:
    job = driver.submit(jobdef="mnp")
    driver.step()
    changes = mnp.take_changes()
    objects = [(k, d) for k, _, d in changes.objects if d is not None]
    jobs = sorted(((j.id, j.to_record()) for j in changes.jobs), key=lambda r: "#" in r[0])
    again = Engine(clock, Host(cpus=2, memory_mib=8192), EngineConfig(min_timeout_seconds=1))
    again.load(objects, jobs)
    again.check_invariants()
    assert again.jobs[f"{job}#1"].spec.resources.vcpu_milli == 1000
    assert again.jobs[f"{job}#0"].spec.resources.vcpu_milli == 2000
    assert again.list_jobs({"multiNodeJobId": job, "jobStatus": "RUNNABLE"})["jobSummaryList"][0][
        "nodeProperties"
    ] == {"isMainNode": False, "numNodes": 3, "nodeIndex": 1}


@pytest.mark.parametrize(
    ("ranges", "num_nodes", "message"),
    [
        ([{"targetNodes": "0:1"}, {"targetNodes": "1:2"}], 3, r"node 1 is already in"),
        ([{"targetNodes": "0:1"}], 3, r"node 2 is in no range"),
        ([{"targetNodes": "0:5"}], 3, r"does not lie within nodes 0 to 2"),
        ([{"targetNodes": "x"}], 3, r"is not a node range"),
        ([{"targetNodes": ":"}], 3, r"is not a node range"),
        ([{"targetNodes": "0:"}], 0, r"numNodes: 0 is out of range"),
    ],
)
def test_node_ranges_cover_every_node_once(
    engine: Engine, ranges: list[dict[str, Any]], num_nodes: int, message: str
) -> None:
    for r in ranges:
        r["container"] = container()
    with pytest.raises(ClientError, match=message):
        register_mnp(engine, num_nodes=num_nodes, ranges=ranges)


def test_open_ranges_and_node_overrides(engine: Engine, driver: Driver) -> None:
    register_mnp(engine, num_nodes=2, ranges=[{"targetNodes": "0:", "container": container()}])
    job = driver.submit(
        jobdef="mnp",
        nodeOverrides={
            "numNodes": 4,
            "nodePropertyOverrides": [
                {"targetNodes": "2:3", "containerOverrides": {"command": ["python", "-c", "x"]}}
            ],
        },
    )
    assert len(engine.jobs[job].children) == 4
    assert driver.detail(f"{job}#3")["container"]["command"][-1] == "x"
    assert driver.detail(f"{job}#1")["container"]["command"][-1] == "main"
    with pytest.raises(ClientError, match=r"nodeOverrides.numNodes: 0 is out of range"):
        driver.submit(jobdef="mnp", nodeOverrides={"numNodes": 0})


def test_refused_where_aws_refuses_them(engine: Engine, driver: Driver) -> None:
    register_mnp(engine)
    with pytest.raises(ClientError, match="arrayProperties: a multi-node parallel job cannot"):
        driver.submit(jobdef="mnp", arrayProperties={"size": 2})
    with pytest.raises(ClientError, match="containerOverrides: a multi-node parallel job takes"):
        driver.submit(jobdef="mnp", containerOverrides={"command": ["true"]})
    with pytest.raises(ClientError, match="nodeOverrides: only a job of a multinode"):
        driver.submit(nodeOverrides={"numNodes": 2})
    for kind in ("SPOT", "FARGATE"):
        role = {"instanceRole": "r"} if kind == "SPOT" else {}
        engine.create_compute_environment(
            {
                "computeEnvironmentName": kind,
                "type": "MANAGED",
                "computeResources": {"type": kind, "maxvCpus": 4, "subnets": ["s"], **role},
            }
        )
        make_queue(engine, kind, (kind,))
        with pytest.raises(ClientError, match=f"of type {kind}; multi-node parallel jobs do not"):
            driver.submit(jobdef="mnp", queue=kind)
    with pytest.raises(ClientError, match="multi-node parallel jobs do not run on Fargate"):
        register_mnp(engine, platformCapabilities=["FARGATE"])


def test_each_node_holds_its_own_share_of_the_environment(engine: Engine, driver: Driver) -> None:
    make_ce(engine, "small", vcpus=2)
    make_queue(engine, "small", ("small",))
    register_mnp(engine)  # main 2 vCPUs, two children 1 each: 4 in all
    job = driver.submit(jobdef="mnp", queue="small")
    driver.step()
    assert driver.step() == []  # the main holds both vCPUs: the children wait for room
    assert "waiting for capacity" in engine.why_not_running(f"{job}#1")


def test_child_nodes_restarting_when_the_job_ends_end_with_it(
    engine: Engine, driver: Driver
) -> None:
    register_mnp(engine, retryStrategy={"attempts": 2})
    job = driver.submit(jobdef="mnp")
    driver.step()
    driver.step()
    driver.finish(f"{job}#0", 1)  # retried: the children are stopped for the next attempt
    engine.terminate_job({"jobId": job, "reason": "enough"})  # ...which never comes
    driver.finish(f"{job}#1", 143)
    driver.finish(f"{job}#2", 143)
    assert [driver.status(f"{job}#{i}") for i in range(3)] == ["FAILED"] * 3
    assert driver.status(job) == "FAILED"


def all_nodes_running(engine: Engine, driver: Driver) -> tuple[str, dict[str, str]]:
    """A multi-node job with every node running; the task id of each node."""
    job = driver.submit(jobdef="mnp")
    driver.step()
    driver.step()
    return job, {job_id: task.task_id for job_id, task in engine.active_tasks()}


def test_a_recovered_engine_signals_no_pid_of_the_attempts_it_lost(
    mnp: Engine, driver: Driver
) -> None:
    job, tasks = all_nodes_running(mnp, driver)
    for node in (f"{job}#0", f"{job}#1", f"{job}#2"):  # as a restart's recovery loses them
        mnp.attempt_lost(tasks[node], "Host EC2 (instance local) terminated.")
    assert not [a for a in mnp.step() if isinstance(a, StopAttempt)]
    assert driver.status(job) == "FAILED"


def test_a_graceful_stop_requeues_nodes_but_not_what_is_being_stopped(
    mnp: Engine, driver: Driver
) -> None:
    job, tasks = all_nodes_running(mnp, driver)
    mnp.attempt_requeued(tasks[f"{job}#1"])
    assert driver.status(f"{job}#1") == "PENDING"  # it starts again once its main node runs
    mnp.terminate_job({"jobId": job, "reason": "stop"})
    for node in (f"{job}#0", f"{job}#2"):
        mnp.attempt_requeued(tasks[node])  # a close while they were being terminated
    assert [driver.status(f"{job}#{i}") for i in range(3)] == ["FAILED"] * 3
