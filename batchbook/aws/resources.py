"""What a working queue needs on AWS, named and described: the options of ``batchbook aws
setup``, the names of what it makes, the roles' trust and permission documents, the tag
that marks each thing as made by it. Pure: nothing here calls AWS."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Final

from batchbook.errors import ClientError
from batchbook.version import __version__

TAG: Final = "batchbook:setup"  # its value: the setup's name; teardown finds what to remove by it
LOG_GROUP: Final = "/aws/batch/job"
BATCH_SERVICE_POLICY: Final = "arn:aws:iam::aws:policy/service-role/AWSBatchServiceRole"
INSTANCE_POLICY: Final = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
EXECUTION_POLICY: Final = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
RUNNER_VCPUS: Final = "1"
RUNNER_MEMORY_MIB: Final = "2048"

# Until `batchbook aws image` made one, the runner starts from python's public image and
# installs batchbook when it is not there; then it runs the map's chunk (Ref:: parameters).
BOOTSTRAP: Final = (
    'python -c "import batchbook" 2>/dev/null || pip install --quiet "batchbook=={version}"; '
    'exec python -m batchbook.runner "$0" "$1"'
)


@dataclass(frozen=True)
class SetupOptions:
    region: str
    bucket: str
    prefix: str = "batchbook"
    name: str = "batchbook"  # of the setup: its queue, and the start of every other name
    max_vcpus: int = 256
    min_vcpus: int = 0
    spot: bool = False
    fargate: bool = False
    instance_types: tuple[str, ...] = ("optimal",)
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.spot and self.fargate:
            raise ClientError("--spot, --fargate: choose one (Fargate Spot is not offered yet)")
        if not 0 <= self.min_vcpus <= self.max_vcpus:
            raise ClientError(
                f"--min-vcpus: {self.min_vcpus} must lie between 0 and --max-vcpus {self.max_vcpus}"
            )
        if not self.bucket or "/" in self.bucket:
            raise ClientError(f"--bucket: {self.bucket!r} is not a bucket name")

    @property
    def kind(self) -> str:
        return "FARGATE" if self.fargate else "SPOT" if self.spot else "EC2"

    @property
    def store(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")

    @property
    def all_tags(self) -> dict[str, str]:
        return {**self.tags, TAG: self.name}


@dataclass(frozen=True)
class Names:
    service_role: str
    instance_role: str  # and its instance profile, of the same name
    job_role: str
    execution_role: str  # Fargate's, to pull the image and write logs
    scheduler_role: str  # EventBridge Scheduler's, to submit a schedule's firings
    compute_environment: str
    queue: str
    job_definition: str

    @classmethod
    def of(cls, opts: SetupOptions) -> Names:
        n = opts.name
        return cls(
            service_role=f"{n}-batch-service",
            instance_role=f"{n}-instance",
            job_role=f"{n}-job",
            execution_role=f"{n}-execution",
            scheduler_role=scheduler_role_name(n),
            compute_environment=f"{n}-{opts.kind.lower()}",
            queue=n,
            job_definition=f"{n}-runner",
        )


def scheduler_role_name(setup: str) -> str:
    """The role a setup's schedules submit their jobs with (see scheduler_policy)."""
    return f"{setup}-scheduler"


def scheduler_policy(region: str, names: Names) -> str:
    """What EventBridge Scheduler may do for a setup's schedules: submit (and tag) jobs to
    its queue with its runner's job definition, nothing else."""
    batch = f"arn:aws:batch:{region}:*"
    resources = [
        f"{batch}:job-queue/{names.queue}",
        f"{batch}:job-definition/{names.job_definition}:*",
        f"{batch}:job/*",
    ]
    statement = {"Effect": "Allow", "Action": ["batch:SubmitJob", "batch:TagResource"]}
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{**statement, "Resource": resources}]}
    )


def trust(service: str) -> str:
    """The trust policy that lets ``service`` (``batch``, ``ec2``, ``ecs-tasks``,
    ``scheduler``) take a role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": f"{service}.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def job_policy(opts: SetupOptions) -> str:
    """What a map's workers may do: read and write their store's prefix, write their logs."""
    prefix = opts.prefix.strip("/")
    objects = (
        f"arn:aws:s3:::{opts.bucket}/{prefix}/*" if prefix else f"arn:aws:s3:::{opts.bucket}/*"
    )
    listing: dict[str, Any] = {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{opts.bucket}",
    }
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}/*"]}}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": objects,
                },
                listing,
                {
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": f"arn:aws:logs:*:*:log-group:{LOG_GROUP}:*",
                },
            ],
        }
    )


def python_image() -> str:
    """The public image of this interpreter's Python minor version."""
    return f"python:{sys.version_info[0]}.{sys.version_info[1]}-slim"


def runner_definition(
    opts: SetupOptions, names: Names, roles: dict[str, str], image: str | None = None
) -> dict[str, Any]:
    """RegisterJobDefinition's request for the runner: the map's store and run come as the
    parameters ``store`` and ``run`` (so a command carries ids only)."""
    container: dict[str, Any] = {
        "image": image or python_image(),
        "command": ["sh", "-c", BOOTSTRAP.format(version=__version__), "Ref::store", "Ref::run"],
        "jobRoleArn": roles[names.job_role],
        "resourceRequirements": [
            {"type": "VCPU", "value": RUNNER_VCPUS},
            {"type": "MEMORY", "value": RUNNER_MEMORY_MIB},
        ],
        "environment": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
    }
    request: dict[str, Any] = {
        "jobDefinitionName": names.job_definition,
        "type": "container",
        "parameters": {"store": opts.store, "run": "none"},
        "containerProperties": container,
        "tags": opts.all_tags,
        "propagateTags": True,
    }
    if opts.fargate:
        container["executionRoleArn"] = roles[names.execution_role]
        container["networkConfiguration"] = {"assignPublicIp": "ENABLED"}  # to pull the image
        container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
        request["platformCapabilities"] = ["FARGATE"]
    return request


def compute_resources(
    opts: SetupOptions, subnets: list[str], groups: list[str], instance_profile: str
) -> dict[str, Any]:
    """CreateComputeEnvironment's computeResources for the options."""
    if opts.fargate:
        return {
            "type": "FARGATE",
            "maxvCpus": opts.max_vcpus,
            "subnets": subnets,
            "securityGroupIds": groups,
        }
    resources: dict[str, Any] = {
        "type": opts.kind,
        "allocationStrategy": (
            "SPOT_PRICE_CAPACITY_OPTIMIZED" if opts.spot else "BEST_FIT_PROGRESSIVE"
        ),
        "minvCpus": opts.min_vcpus,
        "maxvCpus": opts.max_vcpus,
        "desiredvCpus": opts.min_vcpus,
        "instanceTypes": list(opts.instance_types),
        "subnets": subnets,
        "securityGroupIds": groups,
        "instanceRole": instance_profile,
        "tags": opts.all_tags,
    }
    return resources
