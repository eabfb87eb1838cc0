"""``batchbook aws setup``: everything a working queue needs, made idempotently and tagged.

The bucket (or a prefix of an existing one), a named Batch service role, an instance role
and profile (EC2 and Spot), a job role that may use only the store's prefix and write logs,
Fargate's execution role (Fargate), a role with which EventBridge Scheduler may submit to
the queue only (for ``batch.schedule``), a managed compute environment (``minvCpus`` 0 by
default, so an idle queue costs nothing), a job queue, the runner's job definition and the
log group. Each step first looks whether its resource exists; the plan says which will be
made; ``dry_run`` stops there. The result is written to the config file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchbook.aws.clients import Aws, is_missing, wait_until
from batchbook.aws.config import AwsProfile, save_profile
from batchbook.aws.resources import (
    BATCH_SERVICE_POLICY,
    EXECUTION_POLICY,
    INSTANCE_POLICY,
    LOG_GROUP,
    Names,
    SetupOptions,
    compute_resources,
    job_policy,
    runner_definition,
    scheduler_policy,
    trust,
)
from batchbook.errors import ClientError

Out = Callable[[str], None]


@dataclass
class Step:
    what: str  # "IAM role batchbook-job"
    exists: bool
    make: Callable[[], None]


@dataclass
class SetupReport:
    made: list[str] = field(default_factory=list)
    existed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    profile: AwsProfile | None = None


class Setup:
    def __init__(self, aws: Aws, opts: SetupOptions, out: Out = print):
        self.aws, self.opts, self.out = aws, opts, out
        self.names = Names.of(opts)
        self.roles: dict[str, str] = {}  # role name -> ARN, as found or made

    def steps(self) -> list[Step]:
        n, opts = self.names, self.opts
        roles: list[tuple[str, str, list[str], str | None]] = [
            (n.service_role, "batch", [BATCH_SERVICE_POLICY], None)
        ]
        if not opts.fargate:
            roles.append((n.instance_role, "ec2", [INSTANCE_POLICY], None))
        roles.append((n.job_role, "ecs-tasks", [], job_policy(opts)))
        if opts.fargate:
            roles.append((n.execution_role, "ecs-tasks", [EXECUTION_POLICY], None))
        roles.append((n.scheduler_role, "scheduler", [], self._scheduler_policy()))
        steps = [Step(f"S3 bucket {opts.bucket}", self._bucket_exists(), self._make_bucket)]
        for name, service, managed, inline in roles:
            make = functools.partial(self._make_role, name, service, managed, inline)
            steps.append(Step(f"IAM role {name}", self._role_exists(name), make))
        if not opts.fargate:
            steps.append(
                Step(
                    f"instance profile {n.instance_role}",
                    self._profile_exists(),
                    self._make_instance_profile,
                )
            )
        steps += [
            Step(
                f"compute environment {n.compute_environment} ({opts.kind}, {opts.min_vcpus}-"
                f"{opts.max_vcpus} vCPUs)",
                bool(self._compute_environment()),
                self._make_compute_environment,
            ),
            Step(f"job queue {n.queue}", bool(self._queue()), self._make_queue),
            Step(
                f"job definition {n.job_definition}",
                bool(self._job_definitions()),
                self._make_job_definition,
            ),
            Step(f"log group {LOG_GROUP}", self._log_group_exists(), self._make_log_group),
        ]
        return steps

    def run(self, dry_run: bool = False, profile: str = "default") -> SetupReport:
        steps = self.steps()
        report = SetupReport()
        self.out(f"batchbook aws setup {self.opts.name!r} in {self.aws.region}:")
        for step in steps:
            self.out(f"  {'exists      ' if step.exists else 'will create '} {step.what}")
        if dry_run:
            self.out("dry run: nothing was changed")
            return report
        todo = [s for s in steps if not s.exists]
        for i, step in enumerate(todo, 1):
            self.out(f"[{i}/{len(todo)}] creating {step.what} ...")
            step.make()
            report.made.append(step.what)
        self.converge()
        report.existed = [s.what for s in steps if s.exists]
        report.warnings = self.warnings()
        for warning in report.warnings:
            self.out(f"warning: {warning}")
        report.profile = AwsProfile(
            region=self.aws.region,
            queue=self.names.queue,
            job_definition=self.names.job_definition,
            store=self.opts.store,
            setup=self.opts.name,
            aws_profile=self.aws.profile,
        )
        path = save_profile(report.profile, profile)
        latest = max(self._job_definitions(), key=lambda d: d["revision"])
        image = latest["containerProperties"]["image"]
        if image.startswith("python:"):
            self.out(
                f"the runner starts from the public image {image} and installs batchbook at each "
                "start (a few seconds) until `batchbook aws image` makes an image with it"
            )
        self.out(
            f"done: {len(report.made)} created, {len(report.existed)} already there; "
            f"profile {profile!r} written to {path}; batch.use('aws') uses it"
        )
        return report

    def converge(self) -> None:
        """Bring what existed in line with the options (a run cut short, other options):
        the roles' policies, the instance profile's role, the queue's compute environment.
        Each call here is one AWS makes idempotent."""
        n = self.names
        for name, managed, inline in (
            (n.service_role, [BATCH_SERVICE_POLICY], None),
            (n.instance_role, [INSTANCE_POLICY], None),
            (n.job_role, [], job_policy(self.opts)),
            (n.execution_role, [EXECUTION_POLICY], None),
            (n.scheduler_role, [], self._scheduler_policy()),
        ):
            if not self._role_exists(name):
                continue
            for arn in managed:
                self.aws.iam.attach_role_policy(RoleName=name, PolicyArn=arn)
            if inline:
                self.aws.iam.put_role_policy(
                    RoleName=name, PolicyName="batchbook", PolicyDocument=inline
                )
        if not self.opts.fargate:
            profile = self.aws.iam.get_instance_profile(InstanceProfileName=n.instance_role)
            if not profile["InstanceProfile"]["Roles"]:
                self.aws.iam.add_role_to_instance_profile(
                    InstanceProfileName=n.instance_role, RoleName=n.instance_role
                )
        queue, ce = self._queue(), self._compute_environment()
        if not queue or not ce:
            return
        order = queue.get("computeEnvironmentOrder", [])
        named = [o["computeEnvironment"].rsplit("/", 1)[-1] for o in order]
        if n.compute_environment not in named:
            self.out(f"job queue {n.queue}: compute environment {n.compute_environment} goes first")
            others = self.aws.batch.describe_compute_environments(
                computeEnvironments=[o["computeEnvironment"] for o in order[:2]]
            )["computeEnvironments"]
            arns = [ce["computeEnvironmentArn"], *(c["computeEnvironmentArn"] for c in others)]
            self.aws.batch.update_job_queue(
                jobQueue=n.queue,
                computeEnvironmentOrder=[
                    {"order": i + 1, "computeEnvironment": arn} for i, arn in enumerate(arns)
                ],
            )

    def warnings(self) -> list[str]:
        """Compute environments of the queue that keep instances running while it is idle."""
        queue = self._queue()
        names = [o["computeEnvironment"] for o in (queue or {}).get("computeEnvironmentOrder", [])]
        if not names:
            return []
        found = self.aws.batch.describe_compute_environments(computeEnvironments=names)
        return [
            f"compute environment {ce['computeEnvironmentName']} has minvCpus "
            f"{ce['computeResources']['minvCpus']}: it keeps instances (and bills) running while "
            "the queue is idle; 0 costs nothing when nothing runs"
            for ce in found["computeEnvironments"]
            if ce.get("computeResources", {}).get("minvCpus", 0) > 0
        ]

    # -- what exists ---------------------------------------------------------------
    def _bucket_exists(self) -> bool:
        try:
            self.aws.s3.head_bucket(Bucket=self.opts.bucket)
        except Exception as e:
            if is_missing(e):
                return False
            raise ClientError(f"--bucket: {self.opts.bucket}: {e}") from None
        return True

    def _scheduler_policy(self) -> str:
        return scheduler_policy(self.aws.region, self.names)

    def _role_exists(self, name: str) -> bool:
        try:
            self.roles[name] = self.aws.iam.get_role(RoleName=name)["Role"]["Arn"]
        except Exception as e:
            if is_missing(e):
                return False
            raise
        return True

    def _profile_exists(self) -> bool:
        try:
            self.aws.iam.get_instance_profile(InstanceProfileName=self.names.instance_role)
        except Exception as e:
            if is_missing(e):
                return False
            raise
        return True

    def _compute_environment(self) -> dict[str, Any] | None:
        found = self.aws.batch.describe_compute_environments(
            computeEnvironments=[self.names.compute_environment]
        )["computeEnvironments"]
        return found[0] if found else None

    def _queue(self) -> dict[str, Any] | None:
        found = self.aws.batch.describe_job_queues(jobQueues=[self.names.queue])["jobQueues"]
        return found[0] if found else None

    def _job_definitions(self) -> list[dict[str, Any]]:
        return list(
            self.aws.batch.describe_job_definitions(
                jobDefinitionName=self.names.job_definition, status="ACTIVE"
            )["jobDefinitions"]
        )

    def _log_group_exists(self) -> bool:
        groups = self.aws.logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]
        return any(g["logGroupName"] == LOG_GROUP for g in groups)

    # -- making it --------------------------------------------------------------------
    def _tags(self) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in self.opts.all_tags.items()]

    def _make_bucket(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.opts.bucket}
        if self.aws.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.aws.region}
        self.aws.s3.create_bucket(**kwargs)
        self.aws.s3.put_bucket_tagging(Bucket=self.opts.bucket, Tagging={"TagSet": self._tags()})

    def _make_role(self, name: str, service: str, managed: list[str], inline: str | None) -> None:
        role = self.aws.iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=trust(service),
            Description=f"made by batchbook aws setup {self.opts.name}",
            Tags=self._tags(),
        )["Role"]
        self.roles[name] = role["Arn"]
        for arn in managed:
            self.aws.iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        if inline:
            self.aws.iam.put_role_policy(
                RoleName=name, PolicyName="batchbook", PolicyDocument=inline
            )

    def _make_instance_profile(self) -> None:
        name = self.names.instance_role
        self.aws.iam.create_instance_profile(InstanceProfileName=name, Tags=self._tags())
        self.aws.iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)

    def _network(self) -> tuple[list[str], list[str]]:
        """The subnets and security groups given, else the default VPC's."""
        subnets, groups = list(self.opts.subnets), list(self.opts.security_group_ids)
        if subnets and groups:
            return subnets, groups
        vpcs = self.aws.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])
        if not vpcs["Vpcs"]:
            raise ClientError(
                f"--subnets: region {self.aws.region} has no default VPC; give --subnets and "
                "--security-group-ids of a VPC whose subnets reach the internet (or ECR and S3)"
            )
        vpc = vpcs["Vpcs"][0]["VpcId"]
        if not subnets:
            found = self.aws.ec2.describe_subnets(
                Filters=[
                    {"Name": "vpc-id", "Values": [vpc]},
                    {"Name": "default-for-az", "Values": ["true"]},
                ]
            )["Subnets"]
            subnets = [s["SubnetId"] for s in found]
        if not groups:
            found = self.aws.ec2.describe_security_groups(
                Filters=[
                    {"Name": "vpc-id", "Values": [vpc]},
                    {"Name": "group-name", "Values": ["default"]},
                ]
            )["SecurityGroups"]
            groups = [g["GroupId"] for g in found]
        if not subnets or not groups:
            raise ClientError(
                f"--subnets: the default VPC {vpc} has no default subnets or security group; "
                "give --subnets and --security-group-ids"
            )
        return subnets, groups

    def _make_compute_environment(self) -> None:
        subnets, groups = self._network()
        profile = ""
        if not self.opts.fargate:
            profile = self.aws.iam.get_instance_profile(
                InstanceProfileName=self.names.instance_role
            )["InstanceProfile"]["Arn"]
        self._role_exists(self.names.service_role)
        name = self.names.compute_environment
        self.aws.batch.create_compute_environment(
            computeEnvironmentName=name,
            type="MANAGED",
            state="ENABLED",
            computeResources=compute_resources(self.opts, subnets, groups, profile),
            serviceRole=self.roles[self.names.service_role],
            tags=self.opts.all_tags,
        )
        wait_until(
            lambda: (self._compute_environment() or {}).get("status") in ("VALID", "INVALID"),
            f"compute environment {name} to become VALID",
        )
        ce = self._compute_environment() or {}
        if ce.get("status") != "VALID":
            raise ClientError(
                f"compute environment {name}: {ce.get('status')}: {ce.get('statusReason')}"
            )

    def _make_queue(self) -> None:
        self.aws.batch.create_job_queue(
            jobQueueName=self.names.queue,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[
                {"order": 1, "computeEnvironment": self.names.compute_environment}
            ],
            tags=self.opts.all_tags,
        )
        wait_until(
            lambda: (self._queue() or {}).get("status") == "VALID",
            f"job queue {self.names.queue} to become VALID",
        )

    def _make_job_definition(self) -> None:
        for name in (self.names.job_role, self.names.execution_role):
            self._role_exists(name)
        self.aws.batch.register_job_definition(
            **runner_definition(self.opts, self.names, self.roles)
        )

    def _make_log_group(self) -> None:
        self.aws.logs.create_log_group(logGroupName=LOG_GROUP, tags=self.opts.all_tags)
