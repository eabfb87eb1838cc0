"""``batchbook aws doctor``: a configured setup checked end to end, each problem in plain
words with its fix: credentials, region, the store, the roles, the queue and its compute
environments, the runner's job definition, and the image's versions against this Python's."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from batchbook.aws.clients import Aws, is_missing
from batchbook.aws.config import AwsProfile
from batchbook.aws.image import MANIFEST, manifest_differences
from batchbook.aws.resources import Names, SetupOptions


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"  {'ok  ' if self.ok else 'FAIL'} {self.what}" + (
            f"\n       fix: {self.fix}" if self.fix else ""
        )


def check(aws: Aws, profile: AwsProfile) -> list[Finding]:
    out: list[Finding] = []
    try:
        out.append(Finding(True, f"credentials: account {aws.account()} in {aws.region}"))
    except Exception as e:
        return [Finding(False, f"credentials: {e}", "configure AWS credentials (aws configure)")]
    out.append(_store(aws, profile))
    opts = SetupOptions(
        region=profile.region, bucket=profile.bucket, name=profile.setup or profile.queue
    )
    queue = aws.batch.describe_job_queues(jobQueues=[profile.queue])["jobQueues"]
    ces: list[dict[str, Any]] = []
    if not queue:
        out.append(Finding(False, f"job queue {profile.queue}: missing", "run batchbook aws setup"))
    else:
        names_of_ces = [o["computeEnvironment"] for o in queue[0]["computeEnvironmentOrder"]]
        ces = aws.batch.describe_compute_environments(computeEnvironments=names_of_ces)[
            "computeEnvironments"
        ]
        out += _queue(queue[0], ces)
    names = Names.of(opts)
    fargate = any(c.get("computeResources", {}).get("type") == "FARGATE" for c in ces)
    wanted = [names.service_role, names.job_role]
    wanted.append(names.execution_role if fargate else names.instance_role)
    for role in wanted:
        try:
            aws.iam.get_role(RoleName=role)
            out.append(Finding(True, f"IAM role {role}"))
        except Exception as e:
            if not is_missing(e):
                raise
            out.append(Finding(False, f"IAM role {role}: missing", "run batchbook aws setup again"))
    defs = aws.batch.describe_job_definitions(
        jobDefinitionName=profile.job_definition, status="ACTIVE"
    )["jobDefinitions"]
    if defs:
        image = max(defs, key=lambda d: d["revision"])["containerProperties"]["image"]
        out.append(Finding(True, f"job definition {profile.job_definition} (image {image})"))
    else:
        out.append(
            Finding(
                False,
                f"job definition {profile.job_definition}: none ACTIVE",
                "run batchbook aws setup again",
            )
        )
    out.append(_image(aws, profile))
    return out


def _store(aws: Aws, profile: AwsProfile) -> Finding:
    key = f"{profile.prefix}/doctor/{uuid.uuid4().hex}".lstrip("/")
    try:
        aws.s3.put_object(Bucket=profile.bucket, Key=key, Body=b"batchbook doctor")
        aws.s3.get_object(Bucket=profile.bucket, Key=key)["Body"].read()
        aws.s3.delete_object(Bucket=profile.bucket, Key=key)
    except Exception as e:
        return Finding(
            False,
            f"store {profile.store}: cannot write, read and delete there ({e})",
            "check the bucket exists in this account and your credentials may use it",
        )
    return Finding(True, f"store {profile.store}: writes, reads and deletes")


def _queue(queue: dict[str, Any], ces: list[dict[str, Any]]) -> list[Finding]:
    name = queue["jobQueueName"]
    out = []
    if queue["state"] != "ENABLED" or queue["status"] != "VALID":
        out.append(
            Finding(
                False,
                f"job queue {name}: {queue['state']}, {queue['status']}",
                f"aws batch update-job-queue --job-queue {name} --state ENABLED",
            )
        )
    else:
        out.append(Finding(True, f"job queue {name}: ENABLED, VALID"))
    for ce in ces:
        ce_name, kind = ce["computeEnvironmentName"], ce.get("computeResources", {}).get("type", "")
        if ce["state"] != "ENABLED" or ce["status"] != "VALID":
            out.append(
                Finding(
                    False,
                    f"compute environment {ce_name} ({kind}): {ce['state']}, {ce['status']} "
                    f"{ce.get('statusReason', '')}".rstrip(),
                    f"aws batch update-compute-environment --compute-environment {ce_name} --state ENABLED",
                )
            )
        else:
            out.append(Finding(True, f"compute environment {ce_name} ({kind}): ENABLED, VALID"))
        low = ce.get("computeResources", {}).get("minvCpus", 0)
        if low:
            out.append(
                Finding(
                    False,
                    f"compute environment {ce_name}: minvCpus {low} keeps instances billing while idle",
                    f"aws batch update-compute-environment --compute-environment {ce_name} "
                    "--compute-resources minvCpus=0",
                )
            )
    return out


def _image(aws: Aws, profile: AwsProfile) -> Finding:
    key = f"{profile.prefix}/{MANIFEST}".lstrip("/")
    try:
        stored = json.loads(aws.s3.get_object(Bucket=profile.bucket, Key=key)["Body"].read())
    except Exception as e:
        if is_missing(e) or "NoSuchKey" in str(e):
            return Finding(
                True,
                "image: none made; the runner installs batchbook into python's public image at "
                "each start (batchbook aws image makes one that starts at once)",
            )
        raise
    problems = manifest_differences(stored)
    if problems:
        return Finding(
            False,
            "image: its versions differ from this Python's: " + "; ".join(problems),
            "batchbook aws image (and build and push it again)",
        )
    return Finding(True, f"image {stored.get('image', '')}: versions match this Python's")
