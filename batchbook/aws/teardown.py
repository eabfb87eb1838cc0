"""``batchbook aws teardown``: remove what ``setup`` made, found by its tag, nothing else.

The schedules that submit to its queue go first (batch.schedule's, found in the batchbook
schedule group by their target's queue). Job queues are disabled, waited for and deleted before their compute environments (as
AWS requires); job definitions are deregistered; the roles lose their policies and
instance profiles first. The bucket and its runs stay unless ``delete_bucket``; then only a
bucket setup made is emptied and deleted.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchbook.aws.clients import Aws, is_missing, wait_until
from batchbook.aws.resources import LOG_GROUP, TAG
from batchbook.errors import ClientError
from batchbook.vocabulary import SCHEDULE_GROUP, every_page

Out = Callable[[str], None]


@dataclass
class Found:
    """What a setup made and teardown will remove."""

    queues: list[dict[str, Any]]
    compute_environments: list[dict[str, Any]]
    job_definitions: list[dict[str, Any]]
    roles: list[str]
    log_group: bool
    schedules: list[str]  # batch.schedule's, that submit to the setup's queue
    bucket: bool  # made by the setup (tagged)

    def lines(self, bucket: str, delete_bucket: bool) -> list[str]:
        out = [f"schedule {n} (EventBridge Scheduler)" for n in self.schedules]
        out += [f"job queue {q['jobQueueName']}" for q in self.queues]
        out += [
            f"compute environment {c['computeEnvironmentName']}" for c in self.compute_environments
        ]
        out += [
            f"job definition {d['jobDefinitionName']}:{d['revision']}" for d in self.job_definitions
        ]
        out += [f"IAM role {r} (and its policies, instance profile)" for r in self.roles]
        if self.log_group:
            out.append(f"log group {LOG_GROUP}")
        if delete_bucket and self.bucket:
            out.append(f"S3 bucket {bucket} and everything in it")
        return out


def find(aws: Aws, name: str, bucket: str) -> Found:

    def tagged(resource: dict[str, Any]) -> bool:
        return bool((resource.get("tags") or {}).get(TAG) == name)

    batch = aws.batch
    queues = [q for q in every_page(batch.describe_job_queues, "jobQueues") if tagged(q)]
    ces = [
        c
        for c in every_page(batch.describe_compute_environments, "computeEnvironments")
        if tagged(c)
    ]
    defs = [
        d
        for d in every_page(batch.describe_job_definitions, "jobDefinitions", status="ACTIVE")
        if tagged(d)
    ]
    roles = []
    for role in _iam_roles(aws):
        if not role["RoleName"].startswith(f"{name}-"):
            continue
        tags = aws.iam.list_role_tags(RoleName=role["RoleName"])["Tags"]
        if {t["Key"]: t["Value"] for t in tags}.get(TAG) == name:
            roles.append(role["RoleName"])
    groups = aws.logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]
    log_group = any(
        g["logGroupName"] == LOG_GROUP
        and aws.logs.list_tags_log_group(logGroupName=LOG_GROUP).get("tags", {}).get(TAG) == name
        for g in groups
    )
    schedules = _schedules_of(aws, {q["jobQueueName"] for q in queues})
    return Found(queues, ces, defs, roles, log_group, schedules, _bucket_is_ours(aws, bucket, name))


def _schedules_of(aws: Aws, queues: set[str]) -> list[str]:
    """The batchbook schedules whose firings submit to one of ``queues``."""
    from botocore.exceptions import ClientError as BotoClientError

    try:
        listed = every_page(
            aws.scheduler.list_schedules, "Schedules", "NextToken", GroupName=SCHEDULE_GROUP
        )
    except BotoClientError as e:
        if is_missing(e):  # no batchbook schedule group: no schedules
            return []
        raise
    out = []
    for n in [s["Name"] for s in listed]:
        target = aws.scheduler.get_schedule(Name=n, GroupName=SCHEDULE_GROUP)["Target"]
        if json.loads(target.get("Input") or "{}").get("JobQueue") in queues:
            out.append(n)
    return out


def teardown(
    aws: Aws, name: str, bucket: str, delete_bucket: bool = False, out: Out = print
) -> Found:
    found = find(aws, name, bucket)
    batch = aws.batch
    for schedule in found.schedules:  # first: none may submit to a queue being deleted
        out(f"deleting schedule {schedule} ...")
        aws.scheduler.delete_schedule(Name=schedule, GroupName=SCHEDULE_GROUP)
    for q in found.queues:
        queue = q["jobQueueName"]
        out(f"disabling and deleting job queue {queue} ...")
        _disable_then_delete(
            f"job queue {queue}",
            q["state"],
            functools.partial(batch.update_job_queue, jobQueue=queue, state="DISABLED"),
            functools.partial(batch.delete_job_queue, jobQueue=queue),
            functools.partial(_state, batch.describe_job_queues, "jobQueues", jobQueues=[queue]),
        )
    for c in found.compute_environments:
        ce = c["computeEnvironmentName"]
        out(f"disabling and deleting compute environment {ce} ...")
        _disable_then_delete(
            f"compute environment {ce}",
            c["state"],
            functools.partial(
                batch.update_compute_environment, computeEnvironment=ce, state="DISABLED"
            ),
            functools.partial(batch.delete_compute_environment, computeEnvironment=ce),
            functools.partial(
                _state,
                batch.describe_compute_environments,
                "computeEnvironments",
                computeEnvironments=[ce],
            ),
        )
    for d in found.job_definitions:
        out(f"deregistering job definition {d['jobDefinitionName']}:{d['revision']} ...")
        batch.deregister_job_definition(jobDefinition=d["jobDefinitionArn"])
    for role in found.roles:
        out(f"deleting IAM role {role} ...")
        _delete_role(aws, role)
    if found.log_group:
        out(f"deleting log group {LOG_GROUP} ...")
        aws.logs.delete_log_group(logGroupName=LOG_GROUP)
    if delete_bucket:
        if not found.bucket:
            raise ClientError(
                f"--delete-bucket: bucket {bucket} was not made by batchbook aws setup {name!r}; "
                "it is kept"
            )
        out(f"emptying and deleting S3 bucket {bucket} ...")
        _delete_bucket(aws, bucket)
    return found


def _disable_then_delete(
    what: str,
    state: str,
    disable: Callable[[], Any],
    delete: Callable[[], Any],
    current: Callable[[], tuple[str, str] | None],
) -> None:
    """AWS deletes a queue or compute environment only once it is DISABLED (and settled)."""
    if state != "DISABLED":
        disable()
    wait_until(lambda: current() in (("DISABLED", "VALID"), None), f"{what} to be DISABLED")
    delete()
    wait_until(lambda: current() is None, f"{what} to be deleted")


def _state(describe: Callable[..., Any], key: str, **request: Any) -> tuple[str, str] | None:
    """(state, status) of the one thing asked for, e.g. ("DISABLED", "UPDATING") while an
    update settles (AWS deletes nothing then); None when it is gone."""
    items = describe(**request)[key]
    return (str(items[0]["state"]), str(items[0]["status"])) if items else None


def _iam_roles(aws: Aws) -> list[dict[str, Any]]:
    roles: list[dict[str, Any]] = []
    for page in aws.iam.get_paginator("list_roles").paginate():
        roles += page["Roles"]
    return roles


def _delete_role(aws: Aws, role: str) -> None:
    iam = aws.iam
    for policy in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=role, PolicyArn=policy["PolicyArn"])
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        iam.delete_role_policy(RoleName=role, PolicyName=policy)
    for profile in iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]:
        iam.remove_role_from_instance_profile(
            InstanceProfileName=profile["InstanceProfileName"], RoleName=role
        )
        if profile["InstanceProfileName"] == role:  # setup makes it under the role's name
            iam.delete_instance_profile(InstanceProfileName=role)
    iam.delete_role(RoleName=role)


def _bucket_is_ours(aws: Aws, bucket: str, name: str) -> bool:
    try:
        tags = aws.s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    except Exception as e:
        code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
        if is_missing(e) or code in ("NoSuchTagSet", "NoSuchTagSetError"):
            return False
        raise
    return {t["Key"]: t["Value"] for t in tags}.get(TAG) == name


def _delete_bucket(aws: Aws, bucket: str) -> None:
    for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            aws.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    aws.s3.delete_bucket(Bucket=bucket)
