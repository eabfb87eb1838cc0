"""Arrays, dependencies, retries, timeouts, cancel/terminate: AWS Batch semantics with a fake clock."""

from __future__ import annotations

import pytest

from batchbook.engine import Engine, EngineConfig, Host, StopAttempt
from tests.engine.conftest import Driver


def test_array_children_parent_summary_and_success(driver: Driver) -> None:
    parent = driver.submit(arrayProperties={"size": 3})
    assert driver.detail(parent)["arrayProperties"]["statusSummary"]["SUBMITTED"] == 3
    driver.step()
    detail = driver.detail(parent)
    assert detail["status"] == "PENDING"
    assert detail["arrayProperties"]["statusSummary"]["RUNNING"] == 3
    assert detail["arrayProperties"]["size"] == 3
    assert driver.detail(f"{parent}:2")["arrayProperties"] == {"index": 2}
    for i in range(3):
        driver.finish(f"{parent}:{i}")
    assert driver.detail(parent)["status"] == "SUCCEEDED"
    container = driver.detail(parent)["container"]  # as AWS shows it: what each child runs
    assert container["command"] and "exitCode" not in container and "logStreamName" not in container


def test_array_parent_fails_with_child_failed_only_when_all_children_are_final(
    driver: Driver,
) -> None:
    parent = driver.submit(arrayProperties={"size": 3})
    driver.step()
    driver.finish(f"{parent}:0", 1)
    assert driver.status(parent) == "PENDING"  # other children still running
    driver.finish(f"{parent}:1")
    driver.finish(f"{parent}:2")
    detail = driver.detail(parent)
    assert detail["status"] == "FAILED"
    assert detail["statusReason"] == "Array Child Job failed"
    assert detail["arrayProperties"]["statusSummary"]["FAILED"] == 1


def test_plain_dependency_waits_for_the_whole_array(driver: Driver) -> None:
    array = driver.submit(arrayProperties={"size": 2})
    after = driver.submit(name="after", dependsOn=[{"jobId": array}])
    driver.step()
    assert driver.status(after) == "PENDING"
    driver.finish(f"{array}:0")
    driver.step()
    assert driver.status(after) == "PENDING"
    driver.finish(f"{array}:1")
    driver.step()
    assert driver.status(after) == "RUNNING"


def test_failed_dependency_fails_dependents_transitively(driver: Driver) -> None:
    first = driver.submit(name="first")
    second = driver.submit(name="second", dependsOn=[{"jobId": first}])
    third = driver.submit(name="third", dependsOn=[{"jobId": second}])
    array = driver.submit(name="arr", dependsOn=[{"jobId": first}], arrayProperties={"size": 3})
    driver.step()
    driver.finish(first, 1)
    for job in (second, third, f"{array}:1"):
        assert driver.status(job) == "FAILED"
        assert driver.detail(job)["statusReason"] == "Dependent Job failed"
    assert driver.detail(array)["status"] == "FAILED"
    assert driver.detail(array)["statusReason"] == "Dependent Job failed"


def test_dependency_on_an_already_failed_job(driver: Driver) -> None:
    first = driver.submit(name="first")
    driver.step()
    driver.finish(first, 1)
    late = driver.submit(name="late", dependsOn=[{"jobId": first}])
    driver.step()
    assert driver.detail(late)["statusReason"] == "Dependent Job failed"
    done = driver.submit(name="ok")
    driver.step()
    driver.finish(done)
    after_ok = driver.submit(name="after-ok", dependsOn=[{"jobId": done}])
    driver.step()
    assert driver.status(after_ok) == "RUNNING"


def test_n_to_n_child_waits_only_for_its_counterpart(engine: Engine, driver: Driver) -> None:
    first = driver.submit(name="first", arrayProperties={"size": 4})
    second = driver.submit(
        name="second", arrayProperties={"size": 4}, dependsOn=[{"jobId": first, "type": "N_TO_N"}]
    )
    driver.step()
    assert all(driver.status(f"{second}:{i}") == "PENDING" for i in range(4))
    driver.finish(f"{first}:2")
    driver.step()
    assert driver.status(f"{second}:2") == "RUNNING"
    assert driver.status(f"{second}:0") == "PENDING"
    driver.finish(f"{first}:1", 1)
    assert driver.detail(f"{second}:1")["statusReason"] == "Dependent Job failed"


def test_n_to_n_needs_equal_sizes(driver: Driver) -> None:
    first = driver.submit(name="first", arrayProperties={"size": 4})
    with pytest.raises(Exception, match="N_TO_N needs two array jobs of the same size"):
        driver.submit(arrayProperties={"size": 3}, dependsOn=[{"jobId": first, "type": "N_TO_N"}])


def test_sequential_array_runs_children_in_index_order(driver: Driver) -> None:
    job = driver.submit(arrayProperties={"size": 5}, dependsOn=[{"type": "SEQUENTIAL"}])
    order = driver.run_one_by_one(5)
    assert order == [f"{job}:{i}" for i in range(5)]
    assert driver.status(job) == "SUCCEEDED"


def test_sequential_failure_fails_the_rest_of_the_chain(driver: Driver) -> None:
    job = driver.submit(arrayProperties={"size": 2000}, dependsOn=[{"type": "SEQUENTIAL"}])
    driver.step()
    driver.finish(f"{job}:0", 1)  # 1,999 dependents in a chain: no recursion limit
    assert driver.detail(f"{job}:1999")["statusReason"] == "Dependent Job failed"
    assert driver.detail(job)["arrayProperties"]["statusSummary"]["FAILED"] == 2000


RULES = [
    {"onExitCode": "3", "action": "EXIT"},
    {"onReason": "OutOfMemoryError*", "action": "EXIT"},
    {"onStatusReason": "Host EC2*", "action": "RETRY"},
    {"onExitCode": "1*", "action": "RETRY"},
]


@pytest.mark.parametrize(
    ("exits", "expected_attempts", "final"),
    [
        ([3], 1, "FAILED"),  # EXIT rule matches the first attempt
        ([11, 0], 2, "SUCCEEDED"),  # glob 1* matches 11: RETRY
        ([2, 2, 2], 3, "FAILED"),  # no rule matches: retried while attempts remain
        ([1, 3], 2, "FAILED"),  # first rule that matches decides
    ],
)
def test_evaluate_on_exit_first_match(
    driver: Driver, exits: list[int], expected_attempts: int, final: str
) -> None:
    job = driver.submit(retryStrategy={"attempts": 3, "evaluateOnExit": RULES})
    for code in exits:
        driver.step()
        driver.finish(job, code)
    driver.step()
    detail = driver.detail(job)
    assert detail["status"] == final
    assert len(detail["attempts"]) == expected_attempts
    assert detail["retryStrategy"]["evaluateOnExit"][0] == {"onExitCode": "3", "action": "EXIT"}


@pytest.mark.parametrize(("exit_action", "retry_action"), [("Exit", "Retry"), ("exit", "rEtRy")])
def test_evaluate_on_exit_actions_are_not_case_sensitive(
    driver: Driver, exit_action: str, retry_action: str
) -> None:
    rules = [
        {"onExitCode": "3", "action": exit_action},
        {"onExitCode": "1*", "action": retry_action},
    ]
    job = driver.submit(retryStrategy={"attempts": 3, "evaluateOnExit": rules})
    for code in (11, 3):  # retried after 11, then an EXIT on 3
        driver.step()
        driver.finish(job, code)
    driver.step()
    detail = driver.detail(job)
    assert detail["status"] == "FAILED" and len(detail["attempts"]) == 2


def test_oom_attempt_matches_on_reason_and_reports_137(driver: Driver) -> None:
    job = driver.submit(retryStrategy={"attempts": 3, "evaluateOnExit": RULES})
    driver.step()
    driver.finish(job, -9, oom=True)
    detail = driver.detail(job)
    assert detail["status"] == "FAILED"
    assert detail["statusReason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert detail["attempts"][0]["container"]["exitCode"] == 137
    assert detail["attempts"][0]["container"]["reason"].startswith("OutOfMemoryError")


def test_lost_attempt_is_retried_by_its_strategy(driver: Driver) -> None:
    job = driver.submit(retryStrategy={"attempts": 2, "evaluateOnExit": RULES})
    driver.step()
    [task] = driver.running
    del driver.running[task]
    driver.engine.attempt_lost(task, "Host EC2 (instance local) terminated.")
    assert driver.status(job) == "RUNNABLE"
    assert (
        driver.detail(job)["attempts"][0]["statusReason"] == "Host EC2 (instance local) terminated."
    )
    assert "exitCode" not in driver.detail(job)["attempts"][0]["container"]


def test_timeout_stops_the_attempt_and_is_not_retried(driver: Driver) -> None:
    job = driver.submit(timeout={"attemptDurationSeconds": 5}, retryStrategy={"attempts": 3})
    driver.step()
    assert driver.engine.next_deadline() == driver.clock.now + 5000
    driver.clock.advance(4.9)
    driver.step()
    assert driver.stops == []
    driver.clock.advance(0.2)
    driver.step()
    [stop] = driver.stops
    assert isinstance(stop, StopAttempt)
    assert stop.reason == "Job attempt duration exceeded timeout"
    driver.finish(job, 143)
    driver.step()
    detail = driver.detail(job)
    assert detail["status"] == "FAILED"
    assert detail["statusReason"] == "Job attempt duration exceeded timeout"
    assert len(detail["attempts"]) == 1


def test_timeout_applies_to_each_array_child(driver: Driver) -> None:
    job = driver.submit(arrayProperties={"size": 2}, timeout={"attemptDurationSeconds": 2})
    driver.step()
    driver.clock.advance(3)
    driver.step()
    assert len(driver.stops) == 2
    assert {s.task_id for s in driver.stops} == set(driver.running)
    assert {a.job_id for a in driver.running.values()} == {f"{job}:0", f"{job}:1"}


def test_cancel_only_acts_before_starting(driver: Driver) -> None:
    running = driver.submit(name="running")
    driver.step()
    queued = driver.submit(name="queued", dependsOn=[{"jobId": running}])
    driver.step()
    assert driver.engine.cancel_job({"jobId": running, "reason": "stop it"}) == {}
    assert driver.engine.cancel_job({"jobId": queued, "reason": "not needed"}) == {}
    assert driver.status(running) == "RUNNING"
    assert driver.stops == []
    detail = driver.detail(queued)
    assert (detail["status"], detail["statusReason"], detail["isCancelled"]) == (
        "FAILED",
        "not needed",
        True,
    )
    assert driver.engine.cancel_job({"jobId": "no-such-job", "reason": "x"}) == {}


def test_terminate_stops_running_jobs_and_is_not_retried(driver: Driver) -> None:
    job = driver.submit(retryStrategy={"attempts": 5})
    driver.step()
    assert driver.engine.terminate_job({"jobId": job, "reason": "user asked"}) == {}
    [stop] = driver.engine.step()
    assert isinstance(stop, StopAttempt)
    driver.finish(job, 143)
    driver.step()
    detail = driver.detail(job)
    assert (detail["status"], detail["statusReason"], detail["isTerminated"]) == (
        "FAILED",
        "user asked",
        True,
    )
    assert len(detail["attempts"]) == 1


def test_terminate_before_the_process_reports_started(driver: Driver) -> None:
    job = driver.submit()
    [start] = driver.engine.step()  # STARTING, no pid yet
    driver.engine.terminate_job({"jobId": job, "reason": "early"})
    assert driver.engine.step() == []
    driver.engine.attempt_started(start.task_id, 77)
    [stop] = driver.engine.step()
    assert stop.pid == 77


def test_cancel_and_terminate_array_parent(driver: Driver) -> None:
    cancel_me = driver.submit(name="c", arrayProperties={"size": 6})  # 4 vCPUs: 4 run, 2 wait
    driver.step()
    driver.engine.cancel_job({"jobId": cancel_me, "reason": "enough"})
    summary = driver.detail(cancel_me)["arrayProperties"]["statusSummary"]
    assert (summary["RUNNING"], summary["FAILED"]) == (4, 2)
    driver.engine.terminate_job({"jobId": cancel_me, "reason": "really"})
    assert len(driver.engine.step()) == 4
    for job_id in list(driver.running_ids()):
        driver.finish(job_id, 143)
    assert driver.detail(cancel_me)["status"] == "FAILED"


def test_list_jobs_default_status_filters_and_pages(driver: Driver) -> None:
    jobs = [driver.submit(name=f"batch-{i}") for i in range(6)]
    driver.step()
    listed = driver.engine.list_jobs({"jobQueue": "q"})["jobSummaryList"]
    assert {j["jobId"] for j in listed} == set(jobs[:4])  # RUNNING only by default
    assert {
        j["jobId"]
        for j in driver.engine.list_jobs({"jobQueue": "q", "jobStatus": "RUNNABLE"})[
            "jobSummaryList"
        ]
    } == set(jobs[4:])
    named = driver.engine.list_jobs(
        {"jobQueue": "q", "filters": [{"name": "JOB_NAME", "values": ["batch-1*"]}]}
    )
    assert [j["jobName"] for j in named["jobSummaryList"]] == ["batch-1"]
    seen, token = [], None
    while True:
        page = driver.engine.list_jobs(
            {
                "jobQueue": "q",
                "filters": [{"name": "JOB_NAME", "values": ["batch*"]}],
                "maxResults": 4,
                **({"nextToken": token} if token else {}),
            }
        )
        seen += [j["jobId"] for j in page["jobSummaryList"]]
        token = page.get("nextToken")
        if not token:
            break
    assert sorted(seen) == sorted(jobs)
    array = driver.submit(arrayProperties={"size": 3})
    driver.step()
    children = driver.engine.list_jobs({"arrayJobId": array, "jobStatus": "RUNNABLE"})[
        "jobSummaryList"
    ]
    assert [c["arrayProperties"]["index"] for c in children] == [0, 1, 2]


def test_job_definition_revisions(engine: Engine, driver: Driver) -> None:
    second = engine.register_job_definition(
        {
            "jobDefinitionName": "jd",
            "type": "container",
            "containerProperties": {"image": "y", "command": ["true"], "vcpus": 2, "memory": 64},
        }
    )
    assert second["revision"] == 2
    job = driver.submit(jobdef="jd")
    assert driver.detail(job)["jobDefinition"].endswith("job-definition/jd:2")
    pinned = driver.submit(jobdef="jd:1")
    assert driver.detail(pinned)["jobDefinition"].endswith("jd:1")
    engine.deregister_job_definition({"jobDefinition": "jd:2"})
    assert driver.detail(driver.submit(jobdef="jd"))["jobDefinition"].endswith("jd:1")
    statuses = {
        d["revision"]: d["status"]
        for d in engine.describe_job_definitions({"jobDefinitionName": "jd"})["jobDefinitions"]
    }
    assert statuses == {1: "ACTIVE", 2: "INACTIVE"}
    with pytest.raises(Exception, match="INACTIVE"):
        driver.submit(jobdef="jd:2")


def test_state_survives_a_reload(engine: Engine, driver: Driver, clock) -> None:
    first = driver.submit(
        name="first", arrayProperties={"size": 3}, dependsOn=[{"type": "SEQUENTIAL"}]
    )
    waiting = driver.submit(name="waiting", dependsOn=[{"jobId": first}])
    driver.step()
    driver.finish(f"{first}:0")
    driver.step()
    objects, jobs = {}, {}
    changes = engine.take_changes()
    for kind, key, data in changes.objects:
        objects[(kind, key)] = data
    for job in changes.jobs:
        jobs[job.id] = job.to_record()
    # persisted order: parents before children
    ordered = sorted(jobs.items(), key=lambda kv: ":" in kv[0])
    reloaded = Engine(clock, Host(cpus=2, memory_mib=8192), EngineConfig(min_timeout_seconds=1))
    reloaded.load([(k[0], v) for k, v in objects.items()], ordered)
    again = Driver(reloaded, clock)
    assert again.detail(first)["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 1
    assert again.status(waiting) == "PENDING"
    [(job_id, task)] = reloaded.active_tasks()
    assert job_id == f"{first}:1"
    reloaded.attempt_exited(task.task_id, 0)
    again.run_until_idle()
    assert again.status(first) == "SUCCEEDED"
    assert again.status(waiting) == "SUCCEEDED"
