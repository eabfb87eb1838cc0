"""Fields the engine cannot honour are refused by name; queues' state time limits act;
DescribeJobs and DescribeJobDefinitions show what AWS shows."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Driver, FakeClock, make_jobdef

from batchbook.engine import Engine
from batchbook.engine.unsupported import REFUSED
from batchbook.errors import ClientError
from batchbook.validation import service_model

CONTAINER = {
    "image": "python:3.11",
    "command": ["true"],
    "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
}
SUBMIT = {"jobName": "j", "jobQueue": "q", "jobDefinition": "jd"}
QUEUE = {
    "jobQueueName": "q2",
    "priority": 1,
    "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "ce"}],
}


@pytest.mark.parametrize(
    ("operation", "request_", "field"),
    [
        ("SubmitJob", {**SUBMIT, "shareIdentifier": "a"}, "shareIdentifier"),
        ("SubmitJob", {**SUBMIT, "schedulingPriorityOverride": 0}, "schedulingPriorityOverride"),
        (
            "SubmitJob",
            {**SUBMIT, "eksPropertiesOverride": {"podProperties": {}}},
            "eksPropertiesOverride",
        ),
        (
            "SubmitJob",
            {**SUBMIT, "ecsPropertiesOverride": {"taskProperties": []}},
            "ecsPropertiesOverride",
        ),
        (
            "SubmitJob",
            {**SUBMIT, "consumableResourcePropertiesOverride": {"consumableResourceList": []}},
            "consumableResourcePropertiesOverride",
        ),
        (
            "RegisterJobDefinition",
            {"jobDefinitionName": "x", "type": "container", "schedulingPriority": 5},
            "schedulingPriority",
        ),
        (
            "RegisterJobDefinition",
            {
                "jobDefinitionName": "x",
                "type": "container",
                "containerProperties": {**CONTAINER, "user": "nobody"},
            },
            "containerProperties.user",
        ),
        (
            "RegisterJobDefinition",
            {
                "jobDefinitionName": "x",
                "type": "container",
                "containerProperties": {**CONTAINER, "privileged": True},
            },
            "containerProperties.privileged",
        ),
        (
            "RegisterJobDefinition",
            {
                "jobDefinitionName": "x",
                "type": "multinode",
                "nodeProperties": {
                    "numNodes": 1,
                    "mainNode": 0,
                    "nodeRangeProperties": [
                        {
                            "targetNodes": "0",
                            "container": {
                                **CONTAINER,
                                "ulimits": [{"name": "nofile", "softLimit": 1, "hardLimit": 1}],
                            },
                        }
                    ],
                },
            },
            "nodeProperties.nodeRangeProperties[0].container.ulimits",
        ),
        (
            "RegisterJobDefinition",
            {"jobDefinitionName": "x", "type": "container", "eksProperties": {}},
            None,  # empty: not given, so not refused
        ),
        ("CreateJobQueue", {**QUEUE, "schedulingPolicyArn": "arn:x"}, "schedulingPolicyArn"),
        (
            "UpdateJobQueue",
            {"jobQueue": "q", "schedulingPolicyArn": "arn:x"},
            "schedulingPolicyArn",
        ),
        (
            "CreateJobQueue",
            {**QUEUE, "serviceEnvironmentOrder": [{"order": 1, "serviceEnvironment": "s"}]},
            "serviceEnvironmentOrder",
        ),
        ("CreateJobQueue", {**QUEUE, "jobQueueType": "EKS"}, "jobQueueType"),
        (
            "CreateComputeEnvironment",
            {
                "computeEnvironmentName": "e",
                "type": "UNMANAGED",
                "eksConfiguration": {"eksClusterArn": "a", "kubernetesNamespace": "n"},
            },
            "eksConfiguration",
        ),
    ],
)
def test_what_the_engine_cannot_honour_is_refused_by_name(
    engine: Engine, operation: str, request_: dict[str, Any], field: str | None
) -> None:
    call = getattr(engine, {"SubmitJob": "submit_job"}.get(operation, _snake(operation)))
    if field is None:
        with pytest.raises(ClientError, match="containerProperties: required"):
            call(request_)  # refused for another reason, not for the empty eksProperties
        return
    with pytest.raises(
        ClientError, match=rf"^{re.escape(field)}: .*not supported by the local engine"
    ):
        call(request_)


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")


def test_every_refused_field_exists_in_the_model() -> None:
    """A typo in the table would refuse nothing: each path must walk the pinned model."""
    model = service_model("batch")
    for operation, fields in REFUSED.items():
        for path in fields:
            shape = model.operation_model(operation).input_shape
            for part in path.split("."):
                name = part.removesuffix("[]")
                assert name in shape.members, f"{operation}: {path} ({name})"
                shape = shape.members[name]
                if part.endswith("[]"):
                    shape = shape.member


def test_fair_share_operations_answer_by_name() -> None:
    from batchbook.runtime.local import OPERATIONS

    assert "CreateSchedulingPolicy" not in OPERATIONS  # answered "not supported ..." by name


# ------------------------------------------------------------------ state time limits
def limit(reason: str = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", **kw: Any) -> dict[str, Any]:
    return {"reason": reason, "state": "RUNNABLE", "maxTimeSeconds": 600, "action": "CANCEL", **kw}


def test_a_blocked_head_of_queue_is_cancelled_after_its_time(
    engine: Engine, driver: Driver, clock: FakeClock
) -> None:
    engine.update_job_queue({"jobQueue": "q", "jobStateTimeLimitActions": [limit()]})
    make_jobdef(engine, "huge", vcpus=64)
    blocked = driver.submit(jobdef="huge")
    small = driver.submit()
    driver.step()
    driver.finish(small)
    assert driver.status(blocked) == "RUNNABLE"
    assert engine.next_deadline() == engine.jobs[blocked].runnable_at + 600_000  # a timer, no poll
    clock.advance(599)
    driver.step()
    assert driver.status(blocked) == "RUNNABLE"
    clock.advance(1)
    driver.step()
    detail = driver.detail(blocked)
    assert detail["status"] == "FAILED" and detail["isCancelled"]
    assert detail["statusReason"] == (
        "Canceled by JobStateTimeLimit action due to reason: "
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
    )


def test_a_job_that_fits_since_its_environment_grew_is_not_cancelled(
    engine: Engine, driver: Driver, clock: FakeClock
) -> None:
    engine.update_job_queue({"jobQueue": "q", "jobStateTimeLimitActions": [limit()]})
    make_jobdef(engine, "big", vcpus=6)
    make_jobdef(engine, "two", vcpus=2)
    driver.submit(jobdef="two")
    driver.step()  # it runs, and keeps 2 of the 4 vCPUs
    blocked = driver.submit(jobdef="big")
    driver.step()  # marked: it needs 6 vCPUs of 4
    assert driver.detail(blocked)["statusReason"].startswith("MISCONFIGURATION:")
    engine.update_compute_environment(
        {"computeEnvironment": "ce", "computeResources": {"maxvCpus": 7}}
    )
    driver.step()  # now it fits, but not beside the 2-vCPU job: it waits for room
    clock.advance(601)
    driver.step()
    assert driver.status(blocked) == "RUNNABLE"  # waiting for room, not cancelled
    assert "statusReason" not in driver.detail(blocked)


def test_terminate_and_other_reasons(engine: Engine, driver: Driver, clock: FakeClock) -> None:
    engine.update_job_queue(
        {
            "jobQueue": "q",
            "jobStateTimeLimitActions": [
                limit("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"),
                limit(action="TERMINATE", maxTimeSeconds=700),
            ],
        }
    )
    make_jobdef(engine, "huge", vcpus=64)
    make_jobdef(engine, "whole", vcpus=4)
    blocked = driver.submit(jobdef="huge")
    driver.submit(jobdef="whole")  # takes every vCPU, and keeps them
    waiting = driver.submit()  # not blocked for a named reason: only waiting for room
    driver.step()
    clock.advance(650)
    driver.step()
    assert driver.status(blocked) == "RUNNABLE"  # not the reason of the 600 s action
    clock.advance(50)
    driver.step()
    assert driver.detail(blocked)["statusReason"].startswith("Terminated by JobStateTimeLimit")
    assert driver.detail(blocked)["isTerminated"]
    clock.advance(10_000)
    driver.step()
    assert driver.status(waiting) == "RUNNABLE"


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (limit(reason="SOMETHING"), r"reason: 'SOMETHING' is not one of CAPACITY"),
        (limit(maxTimeSeconds=599), r"maxTimeSeconds: 599 is out of range; allowed 600"),
        (
            limit(maxTimeSeconds=86_401),
            r"maxTimeSeconds: 86401 is out of range; allowed 600 to 86400",
        ),
        (limit(state="PENDING"), r"state: 'PENDING'"),
    ],
)
def test_state_time_limits_are_checked(
    engine: Engine, action: dict[str, Any], message: str
) -> None:
    with pytest.raises(ClientError, match=rf"jobStateTimeLimitActions\[0\]\.{message}"):
        engine.create_job_queue({**QUEUE, "jobStateTimeLimitActions": [action]})
    with pytest.raises(ClientError, match="has an action already"):
        engine.update_job_queue({"jobQueue": "q", "jobStateTimeLimitActions": [limit(), limit()]})


# ------------------------------------------------------------------ what DescribeJobs shows
def test_describe_jobs_gives_resources_as_they_were_asked_for(
    engine: Engine, driver: Driver
) -> None:
    modern = driver.submit()
    engine.register_job_definition(
        {
            "jobDefinitionName": "legacy",
            "type": "container",
            "containerProperties": {"image": "x", "command": ["true"], "vcpus": 2, "memory": 300},
        }
    )
    job = driver.submit(jobdef="legacy")
    container = driver.detail(job)["container"]
    assert (container["vcpus"], container["memory"], container["resourceRequirements"]) == (
        2,
        300,
        [],
    )
    mixed = driver.submit(
        jobdef="legacy",
        containerOverrides={"resourceRequirements": [{"type": "MEMORY", "value": "400"}]},
    )
    container = driver.detail(mixed)["container"]
    assert container["vcpus"] == 2 and "memory" not in container
    assert container["resourceRequirements"] == [{"type": "MEMORY", "value": "400"}]
    assert "vcpus" not in driver.detail(modern)["container"]
    driver.step()
    running = driver.detail(modern)["container"]
    assert running["taskArn"].startswith("arn:aws:ecs:us-east-1:123456789012:task/")
    assert running["containerInstanceArn"].startswith(
        "arn:aws:ecs:us-east-1:123456789012:container-instance/ce-local/"
    )
    driver.finish(modern)
    [attempt] = driver.detail(modern)["attempts"]
    assert attempt["container"]["containerInstanceArn"] == running["containerInstanceArn"]
    assert attempt["container"]["taskArn"] == running["taskArn"]


def test_job_definitions_carry_the_defaults_aws_fills_in(engine: Engine) -> None:
    engine.register_job_definition(
        {
            "jobDefinitionName": "f",
            "type": "container",
            "platformCapabilities": ["FARGATE"],
            "containerProperties": {
                **CONTAINER,
                "resourceRequirements": [
                    {"type": "VCPU", "value": "0.25"},
                    {"type": "MEMORY", "value": "512"},
                ],
            },
        }
    )
    [jobdef] = engine.describe_job_definitions({"jobDefinitionName": "f"})["jobDefinitions"]
    props = jobdef["containerProperties"]
    for key in ("volumes", "environment", "mountPoints", "ulimits", "secrets"):
        assert props[key] == []
    assert props["fargatePlatformConfiguration"] == {"platformVersion": "LATEST"}
    [plain] = engine.describe_job_definitions({"jobDefinitionName": "jd"})["jobDefinitions"]
    assert "fargatePlatformConfiguration" not in plain["containerProperties"]


def test_a_definitions_secrets_go_to_the_driver_by_name_and_arn_only(
    engine: Engine, driver: Driver
) -> None:
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/token"
    engine.register_job_definition(
        {"jobDefinitionName": "secretive", "type": "container",
         "containerProperties": {**CONTAINER, "secrets": [{"name": "TOKEN", "valueFrom": arn}]}}
    )  # fmt: skip
    job = driver.submit(jobdef="secretive")
    [start] = driver.step()
    assert start.secrets == (("TOKEN", arn),) and "TOKEN" not in start.env
    assert driver.detail(job)["container"]["secrets"] == [{"name": "TOKEN", "valueFrom": arn}]
