"""`batchbook why JOB --aws` against moto's server: the diagnosis reads only Batch's
Describe*/List* APIs. moto runs every job it can at once (or fails it without docker);
the job it holds is one waiting on a dependency it does not have."""

from __future__ import annotations

from tests.aws.conftest import REGION, batchbook, client

MISSING = "00000000-0000-4000-8000-000000000000"


def test_why_explains_a_job_moto_holds_pending(aws_env: dict[str, str]) -> None:
    assert batchbook("aws", "setup", "--region", REGION, "--bucket", "lab-bucket").returncode == 0
    held = client("batch").submit_job(
        jobName="held",
        jobQueue="batchbook",
        jobDefinition="batchbook-runner",
        dependsOn=[{"jobId": MISSING}],
        parameters={"store": "s3://lab-bucket/batchbook", "run": "none"},
    )["jobId"]
    shown = batchbook("why", held, "--aws")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(
        f"held ({held}) is PENDING: it depends on {MISSING}, which Batch does not have: it "
        "will wait forever [UNDETERMINED]"
    )
    assert f"dependency {MISSING}: Batch has no such job" in shown.stdout
    assert f"aws batch terminate-job --job-id {held}" in shown.stdout
    missing = batchbook("why", "no-such-map", "--aws")
    assert missing.returncode == 2 and "no run has the id or name 'no-such-map'" in missing.stderr
