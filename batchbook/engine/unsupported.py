"""The Batch fields the local engine cannot honour, refused by name instead of ignored.

A field either acts locally as it does on AWS, is recorded and shown back because it only
describes AWS's infrastructure (an image, a role, subnets: see ``RECORDED``), or is in
``REFUSED`` and answers a ClientException that names it and says why. A field counts as
given when it holds anything but None, False or an empty list or map (AWS fills empty lists
into job definitions itself).
"""

from __future__ import annotations

from typing import Any, Final

from batchbook.errors import ClientError

FAIR_SHARE = "fair-share scheduling (scheduling policies, shares, priorities) is not supported"
EKS = "Amazon EKS jobs are not supported; use containerProperties"
ECS = "ecsProperties (several containers per task) are not supported; use containerProperties"
CONSUMABLE = "consumable resources are not supported"
SERVICE_JOBS = "service environments (SageMaker training jobs) are not supported"
NO_CONTAINER = "the local engine runs host processes, not containers, so {what}"

# What a container may not ask for, wherever a container is described.
_CONTAINER: Final = {
    "linuxParameters": NO_CONTAINER.format(what="devices, tmpfs, swap and shm cannot be set"),
    "ulimits": NO_CONTAINER.format(what="container ulimits are not applied"),
    "user": NO_CONTAINER.format(what="every attempt runs as the service's user"),
    "privileged": NO_CONTAINER.format(what="there is no privileged mode"),
    "readonlyRootFilesystem": NO_CONTAINER.format(what="the file system cannot be made read-only"),
}
_NODE_RANGE: Final = {
    "ecsProperties": ECS,
    "eksProperties": EKS,
    "consumableResourceProperties": CONSUMABLE,
    **{f"container.{k}": v for k, v in _CONTAINER.items()},
}
_NODE_OVERRIDE: Final = {
    "ecsPropertiesOverride": ECS,
    "eksPropertiesOverride": EKS,
    "consumableResourcePropertiesOverride": CONSUMABLE,
}

# operation -> field path ("[]" walks every item of a list) -> why it is refused
REFUSED: Final[dict[str, dict[str, str]]] = {
    "SubmitJob": {
        "shareIdentifier": FAIR_SHARE,
        "schedulingPriorityOverride": FAIR_SHARE,
        "eksPropertiesOverride": EKS,
        "ecsPropertiesOverride": ECS,
        "consumableResourcePropertiesOverride": CONSUMABLE,
        **{f"nodeOverrides.nodePropertyOverrides[].{k}": v for k, v in _NODE_OVERRIDE.items()},
    },
    "RegisterJobDefinition": {
        "schedulingPriority": FAIR_SHARE,
        "eksProperties": EKS,
        "ecsProperties": ECS,
        "consumableResourceProperties": CONSUMABLE,
        **{f"containerProperties.{k}": v for k, v in _CONTAINER.items()},
        **{f"nodeProperties.nodeRangeProperties[].{k}": v for k, v in _NODE_RANGE.items()},
    },
    "CreateJobQueue": {
        "schedulingPolicyArn": FAIR_SHARE,
        "serviceEnvironmentOrder": SERVICE_JOBS,
    },
    "UpdateJobQueue": {
        "schedulingPolicyArn": FAIR_SHARE,
        "serviceEnvironmentOrder": SERVICE_JOBS,
    },
    "CreateComputeEnvironment": {"eksConfiguration": EKS},
    "UpdateComputeEnvironment": {"eksConfiguration": EKS},
}

# Fields kept and shown back as given, though nothing local acts on them (for the README).
RECORDED: Final = (
    "containerProperties: image, jobRoleArn, executionRoleArn, volumes, mountPoints, "
    "logConfiguration, networkConfiguration, fargatePlatformConfiguration, ephemeralStorage, "
    "runtimePlatform, repositoryCredentials, instanceType, enableExecuteCommand",
    "propagateTags (there are no ECS tasks to tag)",
    "computeResources: subnets, securityGroupIds, instanceTypes, allocationStrategy, "
    "instanceRole, launchTemplate and the other EC2 settings; serviceRole",
)


def refuse_unsupported(operation: str, request: dict[str, Any]) -> None:
    """ClientError naming the first field of ``request`` the local engine cannot honour."""
    for path, why in REFUSED.get(operation, {}).items():
        for where, value in _walk(request, path.split("."), ""):
            if value is not None and value is not False and value != [] and value != {}:
                raise ClientError(f"{where}: not supported by the local engine: {why}")


def _walk(value: Any, parts: list[str], where: str) -> list[tuple[str, Any]]:
    """(path with indices, value) for every place ``parts`` reaches in ``value``."""
    if not parts:
        return [(where, value)]
    head, rest = parts[0], parts[1:]
    many = head.endswith("[]")
    key = head[:-2] if many else head
    if not isinstance(value, dict) or value.get(key) is None:
        return []
    here = f"{where}.{key}" if where else key
    if not many:
        return _walk(value[key], rest, here)
    items = value[key] if isinstance(value[key], list) else []
    return [hit for i, item in enumerate(items) for hit in _walk(item, rest, f"{here}[{i}]")]
