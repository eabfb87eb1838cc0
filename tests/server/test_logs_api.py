"""The CloudWatch Logs subset through a real boto3 ``logs`` client."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from tests.server.conftest import make_jobdef, make_queue, wait_jobs

GROUP = "/aws/batch/job"


@pytest.fixture
def printed(batch: Any) -> dict[str, Any]:
    """A finished job that printed lines 0..24 (stdout and stderr)."""
    make_queue(batch)
    make_jobdef(batch)
    code = "import sys\nfor i in range(25): print(f'line {i}', file=sys.stderr if i % 5 == 4 else sys.stdout, flush=True)"
    job = batch.submit_job(
        jobName="printer",
        jobQueue="q",
        jobDefinition="py",
        containerOverrides={"command": ["python", "-c", code]},
    )["jobId"]
    (detail,) = wait_jobs(batch, [job])
    assert detail["status"] == "SUCCEEDED"
    return detail


def test_get_log_events_pages_forward_and_stops_on_an_unchanged_token(
    logs: Any, printed: dict[str, Any]
) -> None:
    stream = printed["container"]["logStreamName"]
    messages, token, pages = [], None, 0
    while True:
        kwargs = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=10, **kwargs)
        messages += [e["message"] for e in page["events"]]
        pages += 1
        if page["nextForwardToken"] == token:
            assert page["events"] == []
            break
        token = page["nextForwardToken"]
    assert messages == [f"line {i}" for i in range(25)]
    assert pages == 4  # 10 + 10 + 5, then the empty page with the same token
    events = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True)[
        "events"
    ]
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps) and printed["startedAt"] <= stamps[0] <= printed["stoppedAt"]
    assert all(e["ingestionTime"] >= e["timestamp"] for e in events)


def test_get_log_events_default_is_the_tail_and_pages_backward(
    logs: Any, printed: dict[str, Any]
) -> None:
    stream = printed["container"]["logStreamName"]
    last = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=10)
    assert [e["message"] for e in last["events"]] == [f"line {i}" for i in range(15, 25)]
    before = logs.get_log_events(
        logGroupName=GROUP, logStreamName=stream, limit=10, nextToken=last["nextBackwardToken"]
    )
    assert [e["message"] for e in before["events"]] == [f"line {i}" for i in range(5, 15)]
    window = logs.get_log_events(
        logGroupName=GROUP,
        logStreamName=stream,
        startFromHead=True,
        startTime=last["events"][0]["timestamp"],
    )["events"]
    assert window[-1]["message"] == "line 24" and len(window) <= 25


def test_describe_and_filter(logs: Any, batch: Any, printed: dict[str, Any]) -> None:
    stream = printed["container"]["logStreamName"]
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/batch")["logGroups"]
    assert [g["logGroupName"] for g in groups] == [GROUP]
    assert logs.describe_log_groups(logGroupNamePrefix="/other")["logGroups"] == []
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="py/")["logStreams"]
    assert [s["logStreamName"] for s in streams] == [stream]
    assert streams[0]["lastEventTimestamp"] >= streams[0]["creationTime"]
    found = logs.filter_log_events(logGroupName=GROUP, filterPattern='"line 1"')["events"]
    assert sorted(e["message"] for e in found) == sorted(
        ["line 1"] + [f"line {i}" for i in range(10, 20)]
    )
    assert {e["logStreamName"] for e in found} == {stream}
    assert logs.list_tags_log_group(logGroupName=GROUP)["tags"] == {}  # nobody tagged it
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.list_tags_log_group(logGroupName="/aws/lambda/x")
    none = logs.filter_log_events(
        logGroupName=GROUP, logStreamNames=[stream], filterPattern="line -line"
    )
    assert none["events"] == []
    paged = logs.filter_log_events(logGroupName=GROUP, limit=20)
    assert len(paged["events"]) == 20 and paged["nextToken"]
    rest = logs.filter_log_events(logGroupName=GROUP, limit=20, nextToken=paged["nextToken"])
    assert len(rest["events"]) == 5 and "nextToken" not in rest


def test_logs_errors(logs: Any, printed: dict[str, Any]) -> None:
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_log_events(logGroupName=GROUP, logStreamName="py/default/nope")
    with pytest.raises(logs.exceptions.ResourceNotFoundException):
        logs.get_log_events(logGroupName="/aws/lambda/x", logStreamName="x")
    with pytest.raises(logs.exceptions.InvalidParameterException) as info:
        logs.get_log_events(
            logGroupName=GROUP,
            logStreamName=printed["container"]["logStreamName"],
            nextToken="garbage",
        )
    assert "nextToken" in info.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as info:
        logs.get_log_events(logGroupName=GROUP, logStreamName="../../credentials.json")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(botocore.exceptions.ClientError) as info:
        logs.create_log_group(logGroupName="/mine")
    assert "not supported" in info.value.response["Error"]["Message"]
