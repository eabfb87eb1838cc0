"""Bad requests get a ClientError that names the field and the allowed values; nothing is half-applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batchbook.engine import Engine
from batchbook.errors import ClientError
from batchbook.validation import models_index, service_model
from tests.engine.conftest import Driver

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"arrayProperties": {"size": 1}},
            r"arrayProperties.size: 1 is out of range; allowed 2 to 10000",
        ),
        ({"arrayProperties": {"size": 10_001}}, r"arrayProperties.size: 10001 is out of range"),
        ({"arrayProperties": {"size": "3"}}, r"arrayProperties.size: expected integer"),
        (
            {"retryStrategy": {"attempts": 0}},
            r"retryStrategy.attempts: 0 is out of range; allowed 1 to 10",
        ),
        ({"retryStrategy": {"attempts": 11}}, r"retryStrategy.attempts: 11 is out of range"),
        (
            {"retryStrategy": {"attempts": 2, "evaluateOnExit": [{"action": "RETRY"}] * 6}},
            r"at most 5",
        ),
        (
            {"retryStrategy": {"attempts": 2, "evaluateOnExit": [{"action": "MAYBE"}]}},
            r"action: 'MAYBE' is not one of RETRY, EXIT",
        ),
        (
            {
                "retryStrategy": {
                    "attempts": 2,
                    "evaluateOnExit": [{"onExitCode": "1*2", "action": "EXIT"}],
                }
            },
            r"onExitCode.*'\*' at the end only",
        ),
        (
            {"timeout": {"attemptDurationSeconds": 0}},
            r"timeout.attemptDurationSeconds: 0 is out of range",
        ),
        ({"dependsOn": [{"jobId": "nope"}]}, r"dependsOn\[0\].jobId: job 'nope' does not exist"),
        ({"dependsOn": [{"type": "SEQUENTIAL"}]}, r"SEQUENTIAL without a jobId needs an array job"),
        (
            {"dependsOn": [{"type": "SIDEWAYS"}]},
            r"dependsOn\[0\].type: 'SIDEWAYS' is not one of N_TO_N, SEQUENTIAL",
        ),
        ({"jobName": "has space"}, r"jobName: 'has space' is not valid"),
        ({"jobName": "x" * 129}, r"jobName: .* is not valid; use 1-128"),
        ({"jobQueue": "missing"}, r"jobQueue: job queue 'missing' does not exist"),
        ({"jobDefinition": "missing"}, r"jobDefinition: job definition 'missing' does not exist"),
        ({"surprise": 1}, r"surprise: unknown parameter; allowed: jobName"),
        (
            {"containerOverrides": {"environment": [{"name": "AWS_BATCH_X", "value": "1"}]}},
            r"AWS_BATCH",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "MEMORY", "value": "lots"}]}},
            r"MEMORY: 'lots' is not allowed; use a whole number of MiB, 4 or more",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "0.0001"}]}},
            r"VCPU: '0.0001' is not allowed; use 0.25 to 10000 in steps of 0.25",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "0.1"}]}},
            r"VCPU: '0.1' is not allowed",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "0.3"}]}},
            r"VCPU: '0.3' is not allowed",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "nan"}]}},
            r"VCPU: 'nan' is not a finite number",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "MEMORY", "value": "1e30"}]}},
            r"MEMORY: '1e30' is not allowed; use a whole number of MiB",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "MEMORY", "value": "nan"}]}},
            r"MEMORY: 'nan' is not allowed",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "MEMORY", "value": "0.1"}]}},
            r"MEMORY: '0.1' is not allowed",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "MEMORY", "value": "3"}]}},
            r"MEMORY: '3' is not allowed",
        ),
        (
            {"containerOverrides": {"resourceRequirements": [{"type": "GPU", "value": "0.5"}]}},
            r"GPU: '0.5' is not allowed; use a whole number",
        ),
        ({"parameters": {"big": "x" * 31_000}}, r"at most 30720 bytes"),
    ],
)
def test_submit_job_errors_name_the_field(
    driver: Driver, extra: dict[str, Any], message: str
) -> None:
    before = len(driver.engine.jobs)
    with pytest.raises(ClientError, match=message):
        driver.submit(**extra)
    assert len(driver.engine.jobs) == before


def test_at_most_20_dependencies(driver: Driver) -> None:
    deps = [{"jobId": driver.submit(name=f"d{i}")} for i in range(21)]
    with pytest.raises(ClientError, match="dependsOn: 21 dependencies; at most 20"):
        driver.submit(dependsOn=deps)
    driver.submit(dependsOn=deps[:20])


def test_describe_jobs_takes_at_most_100_ids(engine: Engine) -> None:
    with pytest.raises(ClientError, match="at most 100"):
        engine.describe_jobs({"jobs": [f"id{i}" for i in range(101)]})
    assert engine.describe_jobs({"jobs": ["unknown"]}) == {"jobs": []}


def test_queue_takes_at_most_3_environments_that_exist(engine: Engine) -> None:
    for name in ("a", "b", "c", "d"):
        engine.create_compute_environment(
            {
                "computeEnvironmentName": name,
                "type": "MANAGED",
                "computeResources": {
                    "type": "EC2",
                    "maxvCpus": 1,
                    "subnets": ["s"],
                    "instanceRole": "r",
                },
            }
        )
    order = [{"order": i, "computeEnvironment": n} for i, n in enumerate("abcd")]
    with pytest.raises(ClientError, match="computeEnvironmentOrder: 4 entries; at most 3"):
        engine.create_job_queue(
            {"jobQueueName": "big", "priority": 1, "computeEnvironmentOrder": order}
        )
    with pytest.raises(
        ClientError,
        match=r"computeEnvironmentOrder\[0\].computeEnvironment: compute environment 'zz'",
    ):
        engine.create_job_queue(
            {
                "jobQueueName": "bad",
                "priority": 1,
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "zz"}],
            }
        )
    with pytest.raises(ClientError, match="priority: 1001 is out of range; allowed 0 to 1000"):
        engine.create_job_queue(
            {"jobQueueName": "p", "priority": 1001, "computeEnvironmentOrder": order[:1]}
        )
    assert "big" not in engine.registry.queues


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"computeEnvironmentName": "x", "type": "MANAGED"},
            "computeResources: required for a MANAGED",
        ),
        (
            {"computeEnvironmentName": "x", "type": "SOMETIMES"},
            "type: 'SOMETIMES' is not one of MANAGED, UNMANAGED",
        ),
        (
            {
                "computeEnvironmentName": "x",
                "type": "MANAGED",
                "computeResources": {
                    "type": "EC2",
                    "minvCpus": 4,
                    "maxvCpus": 2,
                    "instanceRole": "r",
                },
            },
            "minvCpus: 4 is greater than maxvCpus 2",
        ),
        (
            {"computeEnvironmentName": "ce", "type": "UNMANAGED"},
            "computeEnvironmentName: 'ce' already exists",
        ),
        (
            {
                "computeEnvironmentName": "x",
                "type": "UNMANAGED",
                "tags": {"batchbook:memoryMiB": "lots"},
            },
            "is not a whole number",
        ),
    ],
)
def test_compute_environment_errors(engine: Engine, request_: dict[str, Any], message: str) -> None:
    with pytest.raises(ClientError, match=message):
        engine.create_compute_environment(request_)


FULL_COMPUTE_RESOURCES = {
    "type": "EC2",
    "minvCpus": 0,
    "maxvCpus": 2,
    "instanceTypes": ["optimal"],
    "subnets": ["subnet-1"],
    "securityGroupIds": ["sg-1"],
    "instanceRole": "ecsInstanceRole",
}


@pytest.mark.parametrize(
    "member", service_model("batch").shape_for("ComputeResource").required_members
)
def test_compute_resources_require_what_the_pinned_model_requires(
    engine: Engine, member: str
) -> None:
    resources = {k: v for k, v in FULL_COMPUTE_RESOURCES.items() if k != member}
    with pytest.raises(
        ClientError, match=f"computeResources.{member}: required parameter is missing"
    ):
        engine.create_compute_environment(
            {"computeEnvironmentName": "x", "type": "MANAGED", "computeResources": resources}
        )


def test_members_the_pinned_model_leaves_optional_are_optional(engine: Engine) -> None:
    shape = service_model("batch").shape_for("ComputeResource")
    optional = [m for m in FULL_COMPUTE_RESOURCES if m not in shape.required_members]
    assert "subnets" in optional  # the pinned copy (botocore 1.44) no longer requires them
    resources = {k: v for k, v in FULL_COMPUTE_RESOURCES.items() if k not in optional}
    # ... but AWS refuses an EC2 or SPOT environment without an instance role, as the engine does
    for kind in ("EC2", "SPOT"):
        with pytest.raises(
            ClientError, match=r"computeResources.instanceRole: Instance role is required\."
        ):
            engine.create_compute_environment(
                {
                    "computeEnvironmentName": "x",
                    "type": "MANAGED",
                    "computeResources": {**resources, "type": kind},
                }
            )
    engine.create_compute_environment(
        {
            "computeEnvironmentName": "x",
            "type": "MANAGED",
            "computeResources": {**resources, "instanceRole": "r"},
        }
    )
    fargate = {"type": "FARGATE", "maxvCpus": 4}  # Fargate has no instances, so no role
    engine.create_compute_environment(
        {"computeEnvironmentName": "f", "type": "MANAGED", "computeResources": fargate}
    )


def test_the_model_is_the_dated_copy_in_the_package_not_botocores() -> None:
    from importlib import resources

    index = models_index()
    assert index["copied"] and index["copied"] in (ROOT / "README.md").read_text()
    for service in ("batch", "logs"):
        path = resources.files("batchbook").joinpath("models", index[service])
        assert service_model(service).api_version in index[service]
        assert path.is_file()  # shipped as package data (pyproject's package-data)


def test_fargate_takes_only_its_sizes(engine: Engine) -> None:
    base = {
        "jobDefinitionName": "f",
        "type": "container",
        "platformCapabilities": ["FARGATE"],
        "containerProperties": {"image": "x", "command": ["true"], "memory": 512},
    }
    for vcpus in ("0.25", "0.5", "16"):
        props = {
            **base["containerProperties"],
            "resourceRequirements": [{"type": "VCPU", "value": vcpus}],
        }
        engine.register_job_definition({**base, "containerProperties": props})
    props = {
        **base["containerProperties"],
        "resourceRequirements": [{"type": "VCPU", "value": "3"}],
    }
    with pytest.raises(
        ClientError, match=r"VCPU: 3 is not a Fargate size; use one of 0.25, 0.5, 1, 2, 4, 8, 16"
    ):
        engine.register_job_definition({**base, "containerProperties": props})


def test_delete_needs_disabled_and_unused(engine: Engine) -> None:
    with pytest.raises(ClientError, match="must be DISABLED"):
        engine.delete_compute_environment({"computeEnvironment": "ce"})
    engine.update_compute_environment({"computeEnvironment": "ce", "state": "DISABLED"})
    with pytest.raises(ClientError, match="still used by job queue"):
        engine.delete_compute_environment({"computeEnvironment": "ce"})
    engine.update_job_queue({"jobQueue": "q", "state": "DISABLED"})
    engine.delete_job_queue({"jobQueue": "q"})
    engine.delete_compute_environment({"computeEnvironment": "ce"})
    assert engine.describe_compute_environments({})["computeEnvironments"] == []


def test_job_definition_errors(engine: Engine) -> None:
    with pytest.raises(ClientError, match="nodeProperties: required for a multinode"):
        engine.register_job_definition({"jobDefinitionName": "m", "type": "multinode"})
    with pytest.raises(ClientError, match="a MEMORY value in MiB is required"):
        engine.register_job_definition(
            {
                "jobDefinitionName": "m",
                "type": "container",
                "containerProperties": {"image": "x", "vcpus": 1},
            }
        )
    with pytest.raises(ClientError, match="jobDefinition: 'jd' must name a revision"):
        engine.deregister_job_definition({"jobDefinition": "jd"})


def test_disabled_queue_refuses_jobs(engine: Engine, driver: Driver) -> None:
    engine.update_job_queue({"jobQueue": "q", "state": "DISABLED"})
    with pytest.raises(ClientError, match="DISABLED"):
        driver.submit()
