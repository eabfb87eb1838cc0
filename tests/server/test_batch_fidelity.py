"""Issue 13 through boto3 against the real service: multi-node jobs whose nodes talk over
loopback, fields refused by name, state time limits that act, what DescribeJobs shows."""

from __future__ import annotations

import socket
import textwrap
from typing import Any

import psutil
import pytest
from conftest import make_jobdef, make_queue, wait_jobs

from batchbook.vocabulary import MAIN_NODE_EXITED

MAIN = """
import os, socket
others = int(os.environ["AWS_BATCH_JOB_NUM_NODES"]) - 1
server = socket.create_server(("127.0.0.1", int(os.environ["PORT"])))
heard = []
peers = []
for _ in range(others):
    conn, _ = server.accept()
    heard.append(int(conn.recv(16)))
    peers.append(conn)
print("main heard nodes", sorted(heard), flush=True)
for conn in peers:
    conn.sendall(b"done")
for conn in peers:
    conn.recv(16)  # b"" once the node has logged what it got and hung up
"""
CHILD = """
import os, socket, time
address = os.environ["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"]
for _ in range(500):  # the main node runs first, but may not listen yet
    try:
        conn = socket.create_connection((address, int(os.environ["PORT"])))
        break
    except ConnectionRefusedError:
        time.sleep(0.02)
conn.sendall(os.environ["AWS_BATCH_JOB_NODE_INDEX"].encode())
print("node", os.environ["AWS_BATCH_JOB_NODE_INDEX"], "got", conn.recv(16).decode(), flush=True)
if os.environ.get("LINGER"):
    print("pid", os.getpid(), flush=True)
    conn.close()
    time.sleep(3600)  # stopped when the main node exits
conn.close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_container(code: str, port: int, **env: str) -> dict[str, Any]:
    return {
        "image": "python:3.11",
        "command": ["python", "-c", textwrap.dedent(code)],
        "environment": [{"name": k, "value": v} for k, v in {"PORT": str(port), **env}.items()],
        "resourceRequirements": [
            {"type": "VCPU", "value": "1"},
            {"type": "MEMORY", "value": "128"},
        ],
    }


def log_text(logs: Any, stream: str) -> str:
    events = logs.get_log_events(
        logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True
    )["events"]
    return "\n".join(e["message"] for e in events)


def test_a_three_node_job_whose_nodes_talk_to_the_main_node(batch: Any, logs: Any) -> None:
    make_queue(batch, max_vcpus=3)
    port = free_port()
    batch.register_job_definition(
        jobDefinitionName="mnp",
        type="multinode",
        nodeProperties={
            "numNodes": 3,
            "mainNode": 0,
            "nodeRangeProperties": [
                {"targetNodes": "0", "container": node_container(MAIN, port)},
                {"targetNodes": "1", "container": node_container(CHILD, port)},
                {"targetNodes": "2:", "container": node_container(CHILD, port, LINGER="1")},
            ],
        },
    )
    job_id = batch.submit_job(jobName="mnp", jobQueue="q", jobDefinition="mnp")["jobId"]
    [job] = wait_jobs(batch, [job_id])
    assert job["status"] == "SUCCEEDED", job
    assert job["nodeProperties"]["numNodes"] == 3 and "container" not in job
    nodes = {n["jobId"]: n for n in wait_jobs(batch, [f"{job_id}#{i}" for i in range(3)])}
    main = nodes[f"{job_id}#0"]
    assert main["nodeDetails"] == {"nodeIndex": 0, "isMainNode": True}
    assert main["startedAt"] == job["startedAt"] and main["stoppedAt"] == job["stoppedAt"]
    assert "main heard nodes [1, 2]" in log_text(logs, main["container"]["logStreamName"])
    one = nodes[f"{job_id}#1"]
    assert one["startedAt"] >= main["startedAt"]
    # It exits as the main node does: done first, or stopped as the job finishes.
    assert one["status"] == "SUCCEEDED" or one["statusReason"] == MAIN_NODE_EXITED
    assert "node 1 got done" in log_text(logs, one["container"]["logStreamName"])
    lingering = nodes[f"{job_id}#2"]
    assert lingering["status"] == "FAILED" and lingering["statusReason"] == MAIN_NODE_EXITED
    text = log_text(logs, lingering["container"]["logStreamName"])
    pid = int(text.split("pid ", 1)[1].split()[0])
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    listed = [
        summary
        for status in ("SUCCEEDED", "FAILED")
        for summary in batch.list_jobs(multiNodeJobId=job_id, jobStatus=status)["jobSummaryList"]
    ]
    assert sorted(s["nodeProperties"]["nodeIndex"] for s in listed) == [0, 1, 2]
    assert [s["nodeProperties"]["isMainNode"] for s in listed].count(True) == 1


def test_unsupported_fields_are_refused_by_name(batch: Any) -> None:
    make_queue(batch)
    make_jobdef(batch)
    cases = [
        (batch.submit_job, {"shareIdentifier": "a"}, "shareIdentifier"),
        (batch.submit_job, {"schedulingPriorityOverride": 1}, "schedulingPriorityOverride"),
    ]
    base = {"jobName": "j", "jobQueue": "q", "jobDefinition": "py"}
    for call, extra, field in cases:
        with pytest.raises(batch.exceptions.ClientException, match=f"{field}: not supported"):
            call(**base, **extra)
    with pytest.raises(batch.exceptions.ClientException, match="schedulingPolicyArn: not supp"):
        batch.update_job_queue(jobQueue="q", schedulingPolicyArn="arn:aws:batch:x")
    with pytest.raises(batch.exceptions.ClientException, match="CreateSchedulingPolicy"):
        batch.create_scheduling_policy(name="p", fairsharePolicy={"shareDecaySeconds": 1})
    with pytest.raises(batch.exceptions.ClientException, match="instanceRole: Instance role is"):
        batch.create_compute_environment(
            computeEnvironmentName="spot",
            type="MANAGED",
            computeResources={"type": "SPOT", "maxvCpus": 2, "subnets": ["s"]},
        )
    job = batch.submit_job(**base, propagateTags=True, tags={"a": "b"})["jobId"]
    [detail] = batch.describe_jobs(jobs=[job])["jobs"]
    assert detail["propagateTags"] is True  # accepted and stored


def test_a_state_time_limit_cancels_the_blocked_head_of_the_queue(batch: Any) -> None:
    make_queue(batch, max_vcpus=2)
    batch.update_job_queue(
        jobQueue="q",
        jobStateTimeLimitActions=[
            {
                "reason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
                "state": "RUNNABLE",
                "maxTimeSeconds": 1,  # the service was started with --min-state-limit 1
                "action": "CANCEL",
            }
        ],
    )
    batch.register_job_definition(
        jobDefinitionName="huge",
        type="container",
        containerProperties={"image": "x", "command": ["true"], "vcpus": 8, "memory": 64},
    )
    job = batch.submit_job(jobName="j", jobQueue="q", jobDefinition="huge")["jobId"]
    [detail] = wait_jobs(batch, [job], timeout=30)
    assert detail["status"] == "FAILED" and detail["isCancelled"]
    assert detail["statusReason"] == (
        "Canceled by JobStateTimeLimit action due to reason: "
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
    )
    assert detail["container"]["vcpus"] == 8 and detail["container"]["memory"] == 64


def test_describe_jobs_and_definitions_show_what_aws_shows(batch: Any) -> None:
    make_queue(batch)
    make_jobdef(batch)
    [jobdef] = batch.describe_job_definitions(jobDefinitionName="py")["jobDefinitions"]
    assert jobdef["containerProperties"]["mountPoints"] == []
    assert jobdef["containerProperties"]["volumes"] == []
    job = batch.submit_job(jobName="j", jobQueue="q", jobDefinition="py")["jobId"]
    [detail] = wait_jobs(batch, [job])
    [attempt] = detail["attempts"]
    assert attempt["container"]["taskArn"] == detail["container"]["taskArn"]
    assert ":container-instance/q-ce-local/" in attempt["container"]["containerInstanceArn"]
    assert detail["container"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "256"},
    ]
    assert "vcpus" not in detail["container"]
