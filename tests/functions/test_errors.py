"""Errors from the service arrive in batchbook's one tree and keep what they know."""

from __future__ import annotations

import pytest

from batchbook.errors import ClientError, ResourceNotFound
from batchbook.functions.backend import Backend


def test_a_refused_request_keeps_operation_request_id_status_and_field(backend: Backend) -> None:
    with pytest.raises(ClientError) as info:
        backend.batch.describe_job_queues(jobQueues=[f"q{i}" for i in range(101)])
    error = info.value
    assert error.operation == "DescribeJobQueues" and error.http_status == 400
    assert error.request_id and len(error.request_id) >= 32
    assert error.field == "jobQueues"
    assert "allowed 0 to 100" in str(error)


def test_every_operation_is_mapped_get_log_events_included(backend: Backend) -> None:
    with pytest.raises(ResourceNotFound) as info:
        backend.logs.get_log_events(logGroupName="/aws/batch/job", logStreamName="no/such/stream")
    assert info.value.operation == "GetLogEvents" and info.value.http_status == 400
    paginator = backend.batch.get_paginator("list_jobs")  # helpers pass through as they are
    assert paginator.paginate(jobQueue="batchbook", jobStatus="RUNNING") is not None


def test_field_is_what_the_message_names_first() -> None:
    assert ClientError("computeResources.maxvCpus: 4 is out of range").field == (
        "computeResources.maxvCpus"
    )
    assert ClientError("dependsOn[0].jobId: required").field == "dependsOn[0].jobId"
    assert ClientError("Something went wrong with no field").field is None
