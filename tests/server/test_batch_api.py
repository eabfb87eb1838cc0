"""The Batch API through real boto3 clients against the real service on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import stat
from typing import Any

import botocore.exceptions
import pytest

from batchbook.server.discovery import Service
from tests.server.conftest import checked_client, make_jobdef, make_queue, start, wait_jobs


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(**kwargs)
    resp = info.value.response
    return {
        "code": resp["Error"]["Code"],
        "message": resp["Error"]["Message"],
        "status": resp["ResponseMetadata"]["HTTPStatusCode"],
        "header": resp["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-errortype"),
    }


def test_getting_started_flow(batch: Any) -> None:
    """CE with min/desired/max vCPUs -> queue -> job definition -> submit -> monitor."""
    make_queue(batch, "getting-started", max_vcpus=2)
    ce = batch.describe_compute_environments(computeEnvironments=["getting-started-ce"])[
        "computeEnvironments"
    ][0]
    assert (ce["status"], ce["state"]) == ("VALID", "ENABLED")
    assert ce["computeResources"]["maxvCpus"] == 2
    queue = batch.describe_job_queues(jobQueues=["getting-started"])["jobQueues"][0]
    assert queue["computeEnvironmentOrder"][0]["computeEnvironment"].endswith("getting-started-ce")
    arn = make_jobdef(batch, "hello", "print('hello from batch')")
    assert arn.endswith(":job-definition/hello:1")
    job = batch.submit_job(jobName="hello", jobQueue="getting-started", jobDefinition="hello")
    seen = []
    while not seen or seen[-1] not in ("SUCCEEDED", "FAILED"):
        status = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
    assert seen[-1] == "SUCCEEDED"
    order = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    detail = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
    assert detail["createdAt"] <= detail["startedAt"] <= detail["stoppedAt"]
    assert detail["container"]["exitCode"] == 0
    listed = batch.list_jobs(jobQueue="getting-started", jobStatus="SUCCEEDED")["jobSummaryList"]
    assert [j["jobId"] for j in listed] == [job["jobId"]]
    assert batch.list_jobs(jobQueue="getting-started")["jobSummaryList"] == []  # RUNNING only


def test_array_job_status_summary_and_listing(batch: Any) -> None:
    make_queue(batch)
    make_jobdef(batch, code="import os; print(os.environ['AWS_BATCH_JOB_ARRAY_INDEX'])")
    job = batch.submit_job(
        jobName="arr", jobQueue="q", jobDefinition="py", arrayProperties={"size": 5}
    )
    (parent,) = wait_jobs(batch, [job["jobId"]])
    assert parent["status"] == "SUCCEEDED"
    assert parent["arrayProperties"]["size"] == 5
    assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 5
    children = batch.list_jobs(arrayJobId=job["jobId"], jobStatus="SUCCEEDED")["jobSummaryList"]
    assert sorted(c["arrayProperties"]["index"] for c in children) == [0, 1, 2, 3, 4]
    page = batch.list_jobs(arrayJobId=job["jobId"], jobStatus="SUCCEEDED", maxResults=2)
    assert len(page["jobSummaryList"]) == 2 and page["nextToken"]
    paginator = batch.get_paginator("list_jobs")
    ids = [
        s["jobId"]
        for p in paginator.paginate(
            arrayJobId=job["jobId"], jobStatus="SUCCEEDED", PaginationConfig={"PageSize": 2}
        )
        for s in p["jobSummaryList"]
    ]
    assert sorted(ids) == sorted(f"{job['jobId']}:{i}" for i in range(5))


def test_dependencies_order_and_failure(batch: Any) -> None:
    make_queue(batch)
    make_jobdef(batch)
    first = batch.submit_job(
        jobName="first",
        jobQueue="q",
        jobDefinition="py",
        containerOverrides={"command": ["python", "-c", "import time; time.sleep(0.3)"]},
    )["jobId"]
    second = batch.submit_job(
        jobName="second", jobQueue="q", jobDefinition="py", dependsOn=[{"jobId": first}]
    )["jobId"]
    failing = batch.submit_job(
        jobName="failing",
        jobQueue="q",
        jobDefinition="py",
        containerOverrides={"command": ["python", "-c", "raise SystemExit(2)"]},
    )["jobId"]
    doomed = batch.submit_job(
        jobName="doomed", jobQueue="q", jobDefinition="py", dependsOn=[{"jobId": failing}]
    )["jobId"]
    a, b, c, d = wait_jobs(batch, [first, second, failing, doomed])
    assert b["status"] == "SUCCEEDED" and b["startedAt"] >= a["stoppedAt"]
    assert b["dependsOn"] == [{"jobId": first}]
    assert c["status"] == "FAILED" and c["container"]["exitCode"] == 2
    assert (d["status"], d["statusReason"], d["attempts"]) == ("FAILED", "Dependent Job failed", [])


def test_retries_visible_in_attempts(batch: Any) -> None:
    make_queue(batch)
    make_jobdef(batch)
    code = "import os, sys; sys.exit(0 if os.environ['AWS_BATCH_JOB_ATTEMPT'] == '3' else 5)"
    job = batch.submit_job(
        jobName="flaky",
        jobQueue="q",
        jobDefinition="py",
        retryStrategy={"attempts": 3},
        containerOverrides={"command": ["python", "-c", code]},
    )["jobId"]
    (detail,) = wait_jobs(batch, [job])
    assert detail["status"] == "SUCCEEDED"
    assert [a["container"]["exitCode"] for a in detail["attempts"]] == [5, 5, 0]
    streams = {a["container"]["logStreamName"] for a in detail["attempts"]}
    assert len(streams) == 3 and all(s.startswith("py/default/") for s in streams)


def test_client_errors_have_aws_shape(batch: Any, service: Service) -> None:
    make_queue(batch)
    make_jobdef(batch)
    err = error_of(batch.submit_job, jobName="x", jobQueue="nope", jobDefinition="py")
    assert err == {
        "code": "ClientException",
        "message": "jobQueue: job queue 'nope' does not exist",
        "status": 400,
        "header": "ClientException",
    }
    err = error_of(
        batch.submit_job,
        jobName="x",
        jobQueue="q",
        jobDefinition="py",
        arrayProperties={"size": 10_001},
    )
    assert "arrayProperties.size" in err["message"] and "2 to 10000" in err["message"]
    err = error_of(batch.describe_jobs, jobs=[f"id-{i}" for i in range(101)])
    assert err["status"] == 400 and "jobs" in err["message"]
    err = error_of(batch.submit_job, jobName="bad name!", jobQueue="q", jobDefinition="py")
    assert "jobName" in err["message"] and "letters" in err["message"]
    err = error_of(batch.describe_scheduling_policies, arns=["arn:aws:batch:x"])
    assert err["code"] == "ClientException" and "not supported" in err["message"]
    err = error_of(
        batch.submit_job,
        jobName="x",
        jobQueue="q",
        jobDefinition="py",
        containerOverrides={"environment": [{"name": "E", "value": "x" * 31_000}]},
    )
    assert "30 KiB" in err["message"]
    for stop in (batch.cancel_job, batch.terminate_job):  # an empty id is refused, as on AWS
        err = error_of(stop, jobId="", reason="r")
        assert err["status"] == 400 and "jobId: must not be empty" in err["message"]
        assert stop(jobId="no-such-job", reason="r")["ResponseMetadata"]["HTTPStatusCode"] == 200
    # A request botocore would refuse to send, sent raw: still a 400 in AWS's shape.
    status, headers, body = raw(service, "POST", "/v1/nosuchoperation", b"{}")
    assert status == 400 and headers["x-amzn-ErrorType"] == "ClientException"
    assert body["__type"] == "ClientException" and "no such Batch operation" in body["message"]


def test_throttling_gives_429_and_boto3_backs_off(tmp_path: Any) -> None:
    svc = start(tmp_path / "throttled", "--throttle", "0.5")  # one call, then one per 2 s
    try:
        quick = checked_client(svc, retries={"mode": "standard", "max_attempts": 1})
        codes = []
        for _ in range(3):
            try:
                quick.describe_job_queues()
                codes.append(200)
            except botocore.exceptions.ClientError as e:
                codes.append(e.response["ResponseMetadata"]["HTTPStatusCode"])
                assert e.response["Error"]["Code"] == "TooManyRequestsException"
        assert codes[0] == 200 and 429 in codes
        patient = checked_client(svc, retries={"mode": "standard", "max_attempts": 20})
        retried = sum(
            patient.describe_job_queues()["ResponseMetadata"]["RetryAttempts"] for _ in range(2)
        )
        assert retried > 0  # every call succeeded, some only after botocore backed off
    finally:
        from batchbook.server.discovery import stop_service

        stop_service(svc.state_dir)


def test_signature_is_required_and_checked(service: Service, batch: Any) -> None:
    status, headers, body = raw(service, "POST", "/v1/describejobqueues", b"{}", headers={})
    assert status == 403 and body["__type"] == "MissingAuthenticationTokenException"
    assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    import boto3

    kwargs = service.client_kwargs()
    wrong_secret = boto3.client("batch", **{**kwargs, "aws_secret_access_key": "x" * 40})
    err = error_of(wrong_secret.describe_job_queues)
    assert (err["status"], err["code"]) == (403, "InvalidSignatureException")
    wrong_key = boto3.client("batch", **{**kwargs, "aws_access_key_id": "AKIAOTHERUSER"})
    err = error_of(wrong_key.describe_job_queues)
    assert (err["status"], err["code"]) == (403, "UnrecognizedClientException")
    # A signed request whose body was changed after signing is refused too.
    request = signed_request(service, "/v1/describejobqueues", b'{"maxResults": 1}')
    status, _, body = raw(service, "POST", "/v1/describejobqueues", b'{"maxResults": 2}', request)
    assert status == 403 and body["__type"] == "InvalidSignatureException"
    # ...even when the signature covers a body hash header: the body itself is hashed
    path = "/v1/describejobqueues"
    for claimed in ("hash of the signed body", "UNSIGNED-PAYLOAD"):
        signed = signed_with_hash_header(service, path, b'{"maxResults": 1}', claimed)
        status, _, body = raw(service, "POST", path, b'{"jobQueues": ["other"]}', signed)
        assert status == 403 and body["__type"] == "InvalidSignatureException"
        assert "does not match its X-Amz-Content-SHA256" in body["message"]
    honest = signed_with_hash_header(service, path, b'{"maxResults": 1}', "hash of the signed body")
    assert raw(service, "POST", path, b'{"maxResults": 1}', honest)[0] == 200
    assert batch.describe_job_queues()["jobQueues"] == []  # the right key still works


def signed_with_hash_header(
    service: Service, path: str, body: bytes, claimed: str
) -> dict[str, str]:
    """A request signed (by botocore) with an X-Amz-Content-SHA256 header among its signed
    headers: the body's own hash, or UNSIGNED-PAYLOAD; a replay with another body keeps it."""
    import hashlib

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    value = hashlib.sha256(body).hexdigest() if claimed != "UNSIGNED-PAYLOAD" else claimed
    request = AWSRequest("POST", service.url + path, data=body)
    request.headers["Content-Type"] = "application/json"
    request.headers["X-Amz-Content-SHA256"] = value
    creds = Credentials(service.credentials.access_key, service.credentials.secret_key)
    SigV4Auth(creds, "batch", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def test_key_file_is_private_and_service_is_loopback_only(service: Service) -> None:
    mode = stat.S_IMODE(os.stat(service.state_dir / "credentials.json").st_mode)
    assert mode == 0o600
    assert service.url.startswith("http://127.0.0.1:")


def test_arns_carry_the_request_region(service: Service) -> None:
    client = checked_client(service)
    eu = service.client(region="eu-west-1")
    make_queue(eu, "eu")
    arn = make_jobdef(client)
    assert arn.startswith("arn:aws:batch:us-east-1:123456789012:")
    queue = eu.describe_job_queues(jobQueues=["eu"])["jobQueues"][0]
    assert queue["jobQueueArn"] == "arn:aws:batch:eu-west-1:123456789012:job-queue/eu"
    job = eu.submit_job(jobName="j", jobQueue="eu", jobDefinition="py")
    assert job["jobArn"].startswith("arn:aws:batch:eu-west-1:123456789012:job/")


def test_tags_routes_on_every_resource(batch: Any) -> None:
    make_queue(batch)
    jobdef = make_jobdef(batch, tags={"team": "a"})
    ce = batch.describe_compute_environments()["computeEnvironments"][0]["computeEnvironmentArn"]
    queue = batch.describe_job_queues()["jobQueues"][0]["jobQueueArn"]
    job = batch.submit_job(
        jobName="t",
        jobQueue="q",
        jobDefinition="py",
        tags={"run": "1"},
        arrayProperties={"size": 2},
    )["jobArn"]
    for arn, before in ((ce, {}), (queue, {}), (jobdef, {"team": "a"}), (job, {"run": "1"})):
        assert batch.list_tags_for_resource(resourceArn=arn)["tags"] == before
        batch.tag_resource(resourceArn=arn, tags={"owner": "me", "x": "y"})
        batch.untag_resource(resourceArn=arn, tagKeys=["x"])
        assert batch.list_tags_for_resource(resourceArn=arn)["tags"] == {**before, "owner": "me"}
    child = job + ":1"
    assert batch.list_tags_for_resource(resourceArn=child)["tags"] == {"run": "1", "owner": "me"}
    detail = batch.describe_jobs(jobs=[job.rsplit("/", 1)[1]])["jobs"][0]
    assert detail["tags"] == {"run": "1", "owner": "me"}
    err = error_of(batch.list_tags_for_resource, resourceArn="arn:aws:s3:::bucket")
    assert err["status"] == 400 and "resourceArn" in err["message"]
    err = error_of(batch.tag_resource, resourceArn=queue, tags={"aws:reserved": "x"})
    assert "aws:" in err["message"]


# ---------------------------------------------------------------- raw HTTP helpers
def signed_request(
    service: Service, path: str, body: bytes, method: str = "POST", target: str | None = None
) -> dict[str, str]:
    """Headers of a correctly signed request (botocore's signer), to tamper with afterwards."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = Credentials(service.credentials.access_key, service.credentials.secret_key)
    request = AWSRequest(method, service.url + path, data=body)
    request.headers["Content-Type"] = "application/json"
    if target:
        request.headers["X-Amz-Target"] = target
    SigV4Auth(creds, "logs" if target else "batch", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def raw(
    service: Service,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    target: str | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One HTTP request, signed with the service's key unless ``headers`` are given."""
    if headers is None:
        headers = signed_request(service, path, body, method, target)
    host, _, port = service.url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(payload) if payload else {}
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"command": ["python\x00", "-c", "pass"]}, "containerOverrides.command[0]"),
        ({"command": ["python", "-c", "print('a\x00b')"]}, "containerOverrides.command[2]"),
        (
            {"environment": [{"name": "A=B", "value": "x"}]},
            "containerOverrides.environment[0].name",
        ),
        (
            {"environment": [{"name": "A\x00", "value": "x"}]},
            "containerOverrides.environment[0].name",
        ),
        (
            {"environment": [{"name": "A", "value": "x\x00y"}]},
            "containerOverrides.environment[0].value",
        ),
    ],
)
def test_what_no_process_can_hold_is_refused_by_field(
    batch: Any, overrides: dict[str, Any], field: str
) -> None:
    make_queue(batch)
    make_jobdef(batch)
    error = error_of(
        batch.submit_job,
        jobName="bad",
        jobQueue="q",
        jobDefinition="py",
        containerOverrides=overrides,
    )
    assert error["code"] == "ClientException" and error["message"].startswith(field + ":")
    # the engine and its fork server go on: the next job runs
    job = batch.submit_job(jobName="good", jobQueue="q", jobDefinition="py")["jobId"]
    assert wait_jobs(batch, [job])[0]["status"] == "SUCCEEDED"


def test_job_definitions_and_parameters_are_checked_alike(batch: Any) -> None:
    error = error_of(
        batch.register_job_definition,
        jobDefinitionName="nul",
        type="container",
        containerProperties={
            "image": "x",
            "command": ["python", "-c\x00"],
            "vcpus": 1,
            "memory": 64,
        },
    )
    assert error["message"].startswith("containerProperties.command[1]: contains a NUL byte")
    make_queue(batch)
    make_jobdef(batch)
    error = error_of(
        batch.submit_job, jobName="p", jobQueue="q", jobDefinition="py", parameters={"x": "a\x00"}
    )
    assert error["message"].startswith("parameters.x: contains a NUL byte")
