"""`batchbook aws setup / teardown / doctor / image` against moto's server: idempotent set-up,
a dry run that changes nothing, a teardown that removes exactly what setup made, the config
file that batch.use("aws") reads, doctor finding what is broken, the image's Dockerfile."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import batchbook as batch
from batchbook.aws.config import load_profile
from batchbook.aws.resources import BATCH_SERVICE_POLICY, TAG
from batchbook.errors import EnvironmentMismatch
from batchbook.version import __version__
from tests.aws.conftest import REGION, batchbook, client

SETUP = ("aws", "setup", "--region", REGION, "--bucket", "lab-bucket")


def made() -> dict[str, list[str]]:
    """What exists now, by kind (names), as AWS lists it."""
    b, iam = client("batch"), client("iam")
    return {
        "queues": [q["jobQueueName"] for q in b.describe_job_queues()["jobQueues"]],
        "ces": [
            c["computeEnvironmentName"]
            for c in b.describe_compute_environments()["computeEnvironments"]
        ],
        "defs": [
            d["jobDefinitionName"]
            for d in b.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
        ],
        "roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
        "profiles": sorted(
            p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]
        ),
        "buckets": [x["Name"] for x in client("s3").list_buckets()["Buckets"]],
        "groups": [g["logGroupName"] for g in client("logs").describe_log_groups()["logGroups"]],
    }


def test_setup_makes_a_working_queue_once_and_a_dry_run_nothing(aws_env: dict[str, str]) -> None:
    before = made()
    dry = batchbook(*SETUP, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "will create  job queue batchbook" in dry.stdout and "dry run" in dry.stdout
    assert made() == before  # nothing changed

    first = batchbook(*SETUP, "--spot")
    assert first.returncode == 0, first.stderr
    after = made()
    assert after["queues"] == ["batchbook"] and after["ces"] == ["batchbook-spot"]
    assert after["defs"] == ["batchbook-runner"] and "lab-bucket" in after["buckets"]
    assert {"batchbook-batch-service", "batchbook-instance", "batchbook-job"} <= set(after["roles"])
    assert after["profiles"] == ["batchbook-instance"] and "/aws/batch/job" in after["groups"]
    [ce] = client("batch").describe_compute_environments()["computeEnvironments"]
    resources = ce["computeResources"]
    assert resources["minvCpus"] == 0 and resources["instanceTypes"] == ["optimal"]
    assert resources["allocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert resources["subnets"] and resources["securityGroupIds"]  # the default VPC's
    assert ce["tags"][TAG] == "batchbook" and ce["serviceRole"].endswith("/batchbook-batch-service")
    policy = client("iam").get_role_policy(RoleName="batchbook-job", PolicyName="batchbook")
    statements = policy["PolicyDocument"]["Statement"]
    assert statements[0]["Resource"] == "arn:aws:s3:::lab-bucket/batchbook/*"
    # EventBridge Scheduler's role may submit (and tag) to this queue and definition only
    scheduler = client("iam").get_role(RoleName="batchbook-scheduler")["Role"]
    principal = scheduler["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert principal == {"Service": "scheduler.amazonaws.com"}
    policy = client("iam").get_role_policy(RoleName="batchbook-scheduler", PolicyName="batchbook")
    [allowed] = policy["PolicyDocument"]["Statement"]
    assert allowed["Action"] == ["batch:SubmitJob", "batch:TagResource"]
    assert f"arn:aws:batch:{REGION}:*:job-queue/batchbook" in allowed["Resource"]
    assert f"arn:aws:batch:{REGION}:*:job-definition/batchbook-runner:*" in allowed["Resource"]

    again = batchbook(*SETUP, "--spot")
    assert again.returncode == 0, again.stderr
    assert "done: 0 created" in again.stdout and "will create" not in again.stdout
    assert made() == after  # a second run creates nothing

    profile = load_profile()  # the config file it wrote, as batch.use("aws") reads it
    assert (profile.region, profile.queue, profile.store) == (
        REGION,
        "batchbook",
        "s3://lab-bucket/batchbook",
    )
    with batch.use("aws") as backend:  # the AWS backend, from that profile
        assert repr(backend) == (
            "<batchbook AWS backend us-east-1, queue batchbook, store s3://lab-bucket/batchbook>"
        )
        assert backend.job_definition() == "batchbook-runner:1"  # its plain revision


def test_fargate_gets_its_execution_role_and_no_instances(aws_env: dict[str, str]) -> None:
    done = batchbook(*SETUP, "--fargate", "--max-vcpus", "16")
    assert done.returncode == 0, done.stderr
    assert "installs batchbook at each start" in done.stdout
    [ce] = client("batch").describe_compute_environments()["computeEnvironments"]
    assert ce["computeEnvironmentName"] == "batchbook-fargate"
    assert ce["computeResources"]["type"] == "FARGATE"
    [jobdef] = client("batch").describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    assert jobdef["platformCapabilities"] == ["FARGATE"]
    assert jobdef["containerProperties"]["executionRoleArn"].endswith("/batchbook-execution")
    assert "batchbook-instance" not in made()["roles"]
    assert batchbook(*SETUP, "--spot", "--fargate").returncode == 2  # one or the other


def test_a_region_without_a_default_vpc_needs_subnets_given(aws_env: dict[str, str]) -> None:
    ec2 = client("ec2")
    [vpc] = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
        "Subnets"
    ]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    ec2.delete_vpc(VpcId=vpc["VpcId"])
    refused = batchbook(*SETUP)
    assert refused.returncode == 2
    assert "has no default VPC; give --subnets and --security-group-ids" in refused.stderr
    assert made()["ces"] == []
    typo = batchbook(*SETUP, "--subnets", "subnet-1", "--security-group-ids", "sg-1")
    assert typo.returncode == 2 and "AWS answered:" in typo.stderr  # said plainly, no traceback
    assert "Traceback" not in typo.stderr
    own = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=own, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(VpcId=own, GroupName="lab", Description="lab")["GroupId"]
    given = batchbook(*SETUP, "--subnets", subnet, "--security-group-ids", group)
    assert given.returncode == 0, given.stderr
    [ce] = client("batch").describe_compute_environments()["computeEnvironments"]
    assert ce["computeResources"]["subnets"] == [subnet]


def test_a_second_run_repairs_what_a_cut_short_one_left(
    aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "credentials").write_text(
        "[lab]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    assert batchbook(*SETUP, "--aws-profile", "lab").returncode == 0
    assert load_profile().aws_profile == "lab"  # doctor and batch.use("aws") use those keys
    iam = client("iam")
    iam.detach_role_policy(RoleName="batchbook-batch-service", PolicyArn=BATCH_SERVICE_POLICY)
    iam.remove_role_from_instance_profile(
        InstanceProfileName="batchbook-instance", RoleName="batchbook-instance"
    )
    again = batchbook(*SETUP, "--aws-profile", "lab")
    assert again.returncode == 0, again.stderr
    attached = iam.list_attached_role_policies(RoleName="batchbook-batch-service")
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [BATCH_SERVICE_POLICY]
    profile = iam.get_instance_profile(InstanceProfileName="batchbook-instance")
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == ["batchbook-instance"]
    spot = batchbook(*SETUP, "--aws-profile", "lab", "--spot")  # other options, same queue
    assert spot.returncode == 0, spot.stderr
    [queue] = client("batch").describe_job_queues(jobQueues=["batchbook"])["jobQueues"]
    first = min(queue["computeEnvironmentOrder"], key=lambda o: o["order"])
    assert first["computeEnvironment"].endswith("batchbook-spot")


def test_min_vcpus_above_zero_is_warned_about(aws_env: dict[str, str]) -> None:
    done = batchbook(*SETUP, "--min-vcpus", "4")
    assert done.returncode == 0, done.stderr
    assert "warning: compute environment batchbook-ec2 has minvCpus 4" in done.stdout


def test_teardown_removes_exactly_what_setup_made(aws_env: dict[str, str]) -> None:
    iam = client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam.create_role(RoleName="batchbook-someone-elses", AssumeRolePolicyDocument=trust)
    client("s3").create_bucket(Bucket="other")
    assert batchbook(*SETUP).returncode == 0
    client("s3").put_object(Bucket="lab-bucket", Key="batchbook/runs/x/run.json", Body=b"{}")
    scheduler = client("scheduler")  # a schedule that submits to the setup's queue, one elsewhere
    scheduler.create_schedule_group(Name="batchbook")
    for name, queue in (("nightly", "batchbook"), ("theirs", "elsewhere")):
        scheduler.create_schedule(
            Name=name,
            GroupName="batchbook",
            ScheduleExpression="rate(1 hour)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={
                "Arn": "arn:aws:scheduler:::aws-sdk:batch:submitJob",
                "RoleArn": "arn:aws:iam::123456789012:role/batchbook-scheduler",
                "Input": json.dumps({"JobName": "n", "JobQueue": queue, "JobDefinition": "d"}),
            },
        )
    listed = batchbook("aws", "teardown", "--region", REGION, "--bucket", "lab-bucket", "--dry-run")
    assert "job queue batchbook" in listed.stdout and made()["queues"] == ["batchbook"]
    assert "schedule nightly" in listed.stdout and "theirs" not in listed.stdout
    refused = batchbook("aws", "teardown", "--region", REGION, "--bucket", "lab-bucket")
    assert refused.returncode == 2 and "pass --yes" in refused.stderr  # stdin is no terminal
    done = batchbook("aws", "teardown", "--region", REGION, "--bucket", "lab-bucket", "--yes")
    assert done.returncode == 0, done.stderr
    left = made()
    assert left["queues"] == [] and left["ces"] == [] and left["defs"] == []
    assert left["roles"] == ["batchbook-someone-elses"] and left["profiles"] == []
    assert sorted(left["buckets"]) == ["lab-bucket", "other"]  # the runs stay
    assert "/aws/batch/job" not in left["groups"]
    left_schedules = scheduler.list_schedules(GroupName="batchbook")["Schedules"]
    assert [x["Name"] for x in left_schedules] == ["theirs"]
    gone = batchbook(
        "aws", "teardown", "--region", REGION, "--bucket", "lab-bucket", "--yes", "--delete-bucket"
    )
    assert gone.returncode == 0, gone.stderr
    assert made()["buckets"] == ["other"]


def test_doctor_says_what_is_broken_and_how_to_fix_it(aws_env: dict[str, str]) -> None:
    assert batchbook(*SETUP).returncode == 0
    healthy = batchbook("aws", "doctor")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "all good" in healthy.stdout and "store s3://lab-bucket/batchbook" in healthy.stdout
    client("batch").update_job_queue(jobQueue="batchbook", state="DISABLED")
    iam = client("iam")
    iam.delete_role_policy(RoleName="batchbook-job", PolicyName="batchbook")
    iam.delete_role(RoleName="batchbook-job")
    broken = batchbook("aws", "doctor")
    assert broken.returncode == 1
    assert "FAIL job queue batchbook: DISABLED" in broken.stdout
    assert "aws batch update-job-queue --job-queue batchbook --state ENABLED" in broken.stdout
    assert "FAIL IAM role batchbook-job: missing" in broken.stdout


def test_image_reproduces_this_python_and_records_its_versions(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    assert batchbook(*SETUP).returncode == 0
    out = tmp_path / "image"
    done = batchbook("aws", "image", "--out", str(out), "--packages", "pytest")
    assert done.returncode == 0, done.stderr
    text = (out / "Dockerfile").read_text()
    assert f"FROM python:{sys.version_info[0]}.{sys.version_info[1]}-slim" in text
    assert f"batchbook=={__version__}" in text and f"pytest=={pytest.__version__}" in text
    stored = client("s3").get_object(Bucket="lab-bucket", Key="batchbook/image/manifest.json")
    manifest = json.loads(stored["Body"].read())
    assert manifest["versions"]["pytest"] == pytest.__version__
    assert (
        "  docker build -t 123456789012.dkr.ecr.us-east-1.amazonaws.com/batchbook:" in done.stdout
    )
    doctor = batchbook("aws", "doctor")
    assert "versions match this Python's" in doctor.stdout
    with batch.use("aws") as backend:  # the pre-flight compares the image's versions
        assert backend.check_environment({"pytest"})["versions"]["pytest"] == pytest.__version__
        manifest["versions"]["pytest"] = "0.0.1"
        client("s3").put_object(
            Bucket="lab-bucket", Key="batchbook/image/manifest.json", Body=json.dumps(manifest)
        )
    mismatch = pytest.raises(EnvironmentMismatch, match=r"module pytest is 0.0.1 on the worker")
    with batch.use("aws") as backend, mismatch:  # (a backend reads the manifest once)
        backend.check_environment({"pytest"})
