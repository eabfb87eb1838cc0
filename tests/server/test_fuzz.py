"""Deterministic fuzzing of every route of the real service: bad input only ever gets a 4xx.

The cases come from botocore's own service models. Every Batch operation that is
``POST /v1/<name>`` (supported locally or not), the three tags routes and the four
CloudWatch Logs operations get: bodies that are not a JSON object (not JSON, an
array, null, invalid UTF-8, nested 100 000 deep, ...), and for each top-level
input member values of the wrong JSON type, oversized strings, out-of-range
integers and structures with unknown keys. The operations the local engine
supports are also fuzzed in depth: every member path down to five levels gets a
value of the wrong type, an integer too wide for its type and a few awkward but
well-typed values ("NaN", "inf", "²", NUL, a log stream's directory, ...).

Every request is signed with the service's key: these are bad requests, not
unauthenticated ones. Two kinds of cases:

* strict: invalid by botocore's model or by a limit AWS documents; the answer
  must be a 4xx with an AWS-shaped JSON body (``__type`` and ``message``).
* probe: well-typed but odd values that AWS may well accept (an unknown job id in
  CancelJob, a NUL in a reason, ...); any answer is fine except a 5xx, a dropped
  connection or a body that is not JSON.

Resources the fuzzing may touch (``hold-q`` behind a blocking job, victims to
cancel) are kept apart from the jobs submitted before the fuzzing, which must
still finish afterwards, as a normal boto3 call must still work.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from batchbook.server.discovery import Service, stop_service
from batchbook.validation import service_model
from tests.server.conftest import checked_client, make_jobdef, make_queue, start, wait_jobs
from tests.server.test_batch_api import signed_request

LOGS_OPERATIONS = ("DescribeLogGroups", "DescribeLogStreams", "FilterLogEvents", "GetLogEvents")
LOGS_TARGET = "Logs_20140328."
LOGS_GROUP = "/aws/batch/job"
HUGE = 100_000  # characters in an oversized string
DEPTH = 5  # member path levels fuzzed in the operations the engine supports (list items count)
ACCOUNT = "123456789012"

# Limits AWS documents in the operations' reference (and botocore's docstrings) but
# that the model does not carry as min/max.
DOCUMENTED_MAX_CHARS = {
    ("CancelJob", "reason"): 1024,
    ("TerminateJob", "reason"): 1024,
    ("SubmitJob", "shareIdentifier"): 255,
    ("SubmitJob", "jobName"): 128,
    ("CreateComputeEnvironment", "computeEnvironmentName"): 128,
    ("CreateJobQueue", "jobQueueName"): 128,
    ("RegisterJobDefinition", "jobDefinitionName"): 128,
}
DOCUMENTED_MAX_ITEMS = {
    ("DescribeComputeEnvironments", "computeEnvironments"): 100,
    ("DescribeJobQueues", "jobQueues"): 100,
    ("DescribeJobDefinitions", "jobDefinitions"): 100,
    ("DescribeJobs", "jobs"): 100,
    ("SubmitJob", "dependsOn"): 20,
}
DOCUMENTED_INT_RANGE = {
    "schedulingPriorityOverride": (0, 9999),
    "schedulingPriority": (0, 9999),
    "priority": (0, 1000),
    "maxResults": (1, 10_000),
    "limit": (1, 10_000),
}


@dataclass(frozen=True)
class Case:
    route: str  # what is being fuzzed, e.g. "batch SubmitJob" or "tags DELETE"
    name: str  # which malformation
    method: str
    path: str
    body: bytes
    target: str | None = None  # X-Amz-Target of a Logs request
    strict: bool = True  # True: must be a 4xx; False: anything but a 5xx or no answer
    headers: dict[str, str] | None = None  # given: sent as they are (not signed)


@dataclass
class State:
    """Real resources in the service, so valid-looking ids and names are tried too."""

    queue: str  # the survivors' queue: no fuzz case names it
    hold_queue: str
    hold_queue_arn: str
    hold_ce: str
    jobdef: str
    jobdef_arn: str
    done_job: str  # a finished job
    done_job_arn: str
    blocker: str  # RUNNING on hold-q until the end; what the fuzzing submits depends on it
    log_stream: str
    victims: Iterator[str] = field(default_factory=lambda: iter(()))  # cancellable children
    fresh: Iterator[int] = field(default_factory=itertools.count)


# ---------------------------------------------------------------- valid requests
def plausible(shape: Any, member: str, state: State) -> Any:
    """A valid-looking value for a member named ``member`` (at any depth)."""
    by_name: dict[str, Any] = {
        "jobId": state.done_job,
        "jobs": [state.done_job],
        "jobQueue": state.hold_queue,
        "jobQueues": [state.hold_queue],
        "jobDefinition": state.jobdef,
        "jobDefinitions": [state.jobdef_arn],
        "computeEnvironment": state.hold_ce,
        "computeEnvironments": [state.hold_ce],
        "jobName": "fuzz",
        "reason": "fuzzing",
        "priority": 1,
        "resourceArn": state.hold_queue_arn,
        "tags": {"fuzz": "yes"},
        "tagKeys": ["fuzz"],
        "logGroupName": LOGS_GROUP,
        "logGroupIdentifier": LOGS_GROUP,
        "logStreamName": state.log_stream,
        "logStreamNames": [state.log_stream],
    }
    return by_name[member] if member in by_name else generic(shape)


def generic(shape: Any, depth: int = 0) -> Any:
    """A minimal value of ``shape``'s type (required members filled in, enums respected)."""
    kind = shape.type_name
    if kind == "structure":
        if depth > 6:
            return {}
        return {k: generic(shape.members[k], depth + 1) for k in shape.required_members}
    if kind in ("list", "map"):
        return [] if kind == "list" else {}
    if kind == "string":
        enum = getattr(shape, "enum", None)
        return enum[0] if enum else "x"
    if kind in ("integer", "long"):
        return max(1, shape.metadata.get("min", 1))
    if kind == "boolean":
        return True
    if kind in ("float", "double"):
        return 1.0
    return 0 if kind == "timestamp" else "x"


def valid_request(operation: str, state: State) -> dict[str, Any]:
    """A request the service accepts (for the supported operations), to fuzz one member of."""
    requirements = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}]
    container = {
        "image": "python:3.11",
        "command": ["python", "-c", "pass"],
        "resourceRequirements": requirements,
        "environment": [{"name": "A", "value": "b"}],
    }
    compute = {
        "type": "EC2",
        "minvCpus": 0,
        "desiredvCpus": 0,
        "maxvCpus": 1,
        "instanceTypes": ["optimal"],
        "subnets": ["subnet-1"],
        "securityGroupIds": ["sg-1"],
        "instanceRole": "ecsInstanceRole",
    }
    n = next(state.fresh)  # a fresh name each time, so one accepted case masks no other
    bases: dict[str, Callable[[], dict[str, Any]]] = {
        "SubmitJob": lambda: {
            "jobName": "fuzz",
            "jobQueue": state.hold_queue,
            "jobDefinition": state.jobdef,
            "containerOverrides": {"resourceRequirements": requirements},
            "dependsOn": [{"jobId": state.blocker}],  # so nothing accepted here ever runs
            "retryStrategy": {
                "attempts": 2,
                "evaluateOnExit": [{"onExitCode": "1*", "action": "RETRY"}],
            },
            "timeout": {"attemptDurationSeconds": 600},
            "parameters": {"p": "v"},
            "tags": {"fuzz": "yes"},
        },
        "RegisterJobDefinition": lambda: {
            "jobDefinitionName": "fuzz-jd",
            "type": "container",
            "containerProperties": container,
        },
        "CreateComputeEnvironment": lambda: {
            "computeEnvironmentName": f"fuzz-ce-{n}",
            "type": "MANAGED",
            "computeResources": compute,
            "tags": {"batchbook:memoryMiB": "512"},
        },
        "CreateJobQueue": lambda: {
            "jobQueueName": f"fuzz-q-{n}",
            "priority": 1,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": state.hold_ce}],
        },
        "UpdateJobQueue": lambda: {
            "jobQueue": state.hold_queue,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": state.hold_ce}],
        },
        "ListJobs": lambda: {
            "jobQueue": state.hold_queue,
            "filters": [{"name": "BEFORE_CREATED_AT", "values": ["99999999999999"]}],
        },
        "DeregisterJobDefinition": lambda: {"jobDefinition": "fuzz-jd:1"},
        "CancelJob": lambda: {"jobId": next(state.victims, state.done_job), "reason": "fuzz"},
        "TerminateJob": lambda: {"jobId": next(state.victims, state.done_job), "reason": "fuzz"},
        "GetLogEvents": lambda: {"logGroupName": LOGS_GROUP, "logStreamName": state.log_stream},
        "FilterLogEvents": lambda: {
            "logGroupName": LOGS_GROUP,
            "logStreamNames": [state.log_stream],
            "filterPattern": "hello",
        },
        "DescribeLogStreams": lambda: {"logGroupName": LOGS_GROUP},
        "TagResource": lambda: {"tags": {"fuzz": "yes"}},
    }
    if operation in bases:
        return bases[operation]()
    model = service_model("logs" if operation in LOGS_OPERATIONS else "batch")
    shape = model.operation_model(operation).input_shape
    return {k: plausible(shape.members[k], k, state) for k in shape.required_members}


# ---------------------------------------------------------------- bad values
Variant = tuple[str, Any, bool]  # (label, value, strict)


def _oversize_is_invalid(op: str, shape: Any, member: str) -> bool:
    return bool(
        shape.metadata.get("max") is not None
        or getattr(shape, "enum", None)
        or (op, member) in DOCUMENTED_MAX_CHARS
        or member == "nextToken"  # only tokens the service issued are valid
    )


def special_values(member: str, state: State) -> Iterator[Variant]:
    """Well-typed values aimed at what the service does with particular members."""
    stream_dir = state.log_stream.rsplit("/", 1)[0]

    def token(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode()

    specials: dict[str, list[Any]] = {
        "logStreamName": [stream_dir, stream_dir.split("/")[0], "a\x00b"],
        "logStreamNames": [[stream_dir], [stream_dir.split("/")[0]], ["a\x00b"]],
        "logStreamNamePrefix": [stream_dir, "\x00"],
        "jobDefinition": ["py:0", "py:-1", "py:" + "9" * 30, f"{state.jobdef_arn}:2", "py:", ":"],
        "jobQueue": [
            f"{state.hold_queue}/",
            f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/",
            "arn:",
        ],
        "computeEnvironment": [f"{state.hold_ce}/", "arn:", "arn:aws:batch:::compute-environment/"],
        "arrayJobId": [state.done_job, state.done_job + ":0", ":", state.done_job + ":-1"],
        "jobId": [state.done_job + ":0", state.done_job + ":" + "9" * 30, ":"],
        "jobs": [[state.done_job + ":0"], [":"], [state.done_job] * 100],
        "nextToken": [
            token(b"-1"),
            token(b"99999999999999999999"),
            token(b"1e3"),
            token(b"\xff\xfe"),
            token(b" 5 "),
            "f/999999999999",
            "b/0",
            "f/-1",
            "=",
        ],
    }
    for value in specials.get(member, []):
        yield f"special {value!r:.40}", value, False


def top_level_values(op: str, member: str, shape: Any, state: State) -> Iterator[Variant]:
    """Bad values for a top-level member: wrong types, oversize, out of range, unknown keys."""
    kind = shape.type_name
    if kind == "string":
        enum = bool(getattr(shape, "enum", None))
        yield from [("int", 12345, True), ("list", ["x"], True), ("dict", {"x": "y"}, True)]
        yield "bool", True, True
        yield "oversize", "x" * HUGE, _oversize_is_invalid(op, shape, member)
        yield "lone surrogate", "\ud800", enum
        yield "NUL and controls", "a\x00b\x01\x1b", enum
        yield "path traversal", "../../../../etc/passwd", enum
        yield "empty", "", enum or bool(shape.metadata.get("min"))
    elif kind in ("integer", "long"):
        yield from [("string", "5", True), ("float", 1.5, True), ("bool", True, True)]
        yield from [("list", [1], True), ("dict", {}, True)]
        # Every top-level number of both APIs is a count, a size or a priority: none is negative.
        yield from [("-1", -1, True), ("-2**63-1", -(2**63) - 1, True)]
        yield from [("2**63", 2**63, True), ("10**30", 10**30, True)]
        if kind == "integer":
            yield "2**31 (int32 overflow)", 2**31, True
        if member in DOCUMENTED_INT_RANGE:
            high = DOCUMENTED_INT_RANGE[member][1]
            yield f"{high + 1} (documented max {high})", high + 1, True
    elif kind == "boolean":
        yield from [("string", "true", True), ("int", 1, True), ("list", [True], True)]
    elif kind in ("float", "double"):
        yield from [("string", "1.5", True), ("list", [1.5], True)]
    elif kind == "list":
        yield from [("string", "x", True), ("int", 5, True), ("dict", {"a": 1}, True)]
        item = shape.member
        yield (
            "wrong item type",
            [5 if item.type_name in ("string", "structure", "map") else "x"],
            True,
        )
        yield "null item", [None], True
        yield "nested lists", [[[["x"]]]], True
        limit = shape.metadata.get("max") or DOCUMENTED_MAX_ITEMS.get((op, member))
        if limit is not None:
            yield f"{limit + 1} items (max {limit})", [generic(item)] * (limit + 1), True
        if item.type_name == "string":
            yield "oversize item", ["x" * HUGE], _oversize_is_invalid(op, item, member)
            yield "10 000 items", [f"item-{i}" for i in range(10_000)], limit is not None
        if item.type_name == "structure":
            yield "item with unknown key", [{**generic(item), "zzUnknown": {"a": [1]}}], True
    elif kind == "map":
        yield from [("list", ["x"], True), ("string", "x", True), ("int", 5, True)]
        yield "int value", {"k": 5}, True
        yield "dict value", {"k": {"a": "b"}}, True
        yield "null value", {"k": None}, True
        tags = member == "tags"  # AWS: keys up to 128 characters, values up to 256
        yield "oversize key", {"k" * HUGE: "v"}, tags or shape.key.metadata.get("max") is not None
        yield (
            "oversize value",
            {"k": "v" * HUGE},
            tags or shape.value.metadata.get("max") is not None,
        )
        if shape.metadata.get("max") is not None:
            limit = shape.metadata["max"]
            yield (
                f"{limit + 1} entries (max {limit})",
                {f"k{i}": "v" for i in range(limit + 1)},
                True,
            )
        yield "lone surrogate key", {"\udc80": "v"}, False
        yield "empty key", {"": "v"}, tags or bool(shape.key.metadata.get("min"))
    elif kind == "structure":
        yield from [("int", 5, True), ("string", "x", True), ("list", [{}], True)]
        yield "unknown key", {**generic(shape), "zzUnknown": 1}, True
        yield "nested unknown keys", nested_unknown(shape), True
    yield from special_values(member, state)


def nested_values(member: str, shape: Any, state: State) -> Iterator[Variant]:
    """Bad values for a member inside a structure, list or map: one wrong type, odd values."""
    kind = shape.type_name
    if kind == "string":
        yield "int", 5, True
        if getattr(shape, "enum", None):
            yield "not in enum", "NOT_AN_ENUM", True
            return
        for value in ("", "NaN", "inf", "-1", "1e400", "\u00b2", "a\x00b", "x" * HUGE):
            yield f"{value!r:.12}", value, False
    elif kind in ("integer", "long"):
        yield "string", "5", True
        yield "2**63", 2**63, True
        if kind == "integer":
            yield "2**31 (int32 overflow)", 2**31, True
        yield from [("-1", -1, False), ("0", 0, False)]
    elif kind == "boolean":
        yield "string", "x", True
    elif kind in ("float", "double"):
        yield "string", "x", True
        yield "huge", 1e308, False
    elif kind == "list":
        yield "string", "x", True
        yield "empty", [], False
    elif kind == "map":
        yield "int", 5, True
        yield "int value", {"k": 5}, True
    elif kind == "structure":
        yield "int", 5, True
        yield "unknown key", {**generic(shape), "zzUnknown": 1}, True
    else:
        yield "list", [1], True
    yield from special_values(member, state)


def variants(
    op: str, member: str, shape: Any, base: Any, state: State, depth: int, top: bool
) -> Iterator[Variant]:
    """Values for ``member`` that are bad somewhere at or below it, the rest left valid."""
    own = top_level_values(op, member, shape, state) if top else nested_values(member, shape, state)
    yield from own
    if depth <= 0:
        return
    kind = shape.type_name
    if kind == "structure":
        struct = base if isinstance(base, dict) else generic(shape)
        for name, sub in shape.members.items():
            sub_base = struct.get(name, plausible(sub, name, state))
            for label, value, strict in variants(op, name, sub, sub_base, state, depth - 1, False):
                yield f".{name} {label}", {**struct, name: value}, strict
    elif kind == "list":
        items = base if isinstance(base, list) and base else [generic(shape.member)]
        for i, item in enumerate(items[:3]):
            for label, value, strict in variants(
                op, member, shape.member, item, state, depth - 1, False
            ):
                yield f"[{i}] {label}", [*items[:i], value, *items[i + 1 :]], strict
    elif kind == "map":
        entries = base if isinstance(base, dict) and base else {"k": generic(shape.value)}
        for key, item in list(entries.items())[:3]:
            for label, value, strict in variants(
                op, key, shape.value, item, state, depth - 1, False
            ):
                yield f"{{{key}}} {label}", {**entries, key: value}, strict


def nested_unknown(shape: Any, depth: int = 0) -> Any:
    """The shape filled in, with an unknown key at its deepest nested structure."""
    value = generic(shape)
    for name, member in shape.members.items():
        if member.type_name == "structure" and depth < 6:
            value[name] = nested_unknown(member, depth + 1)
            return value
        if member.type_name == "list" and member.member.type_name == "structure" and depth < 6:
            value[name] = [nested_unknown(member.member, depth + 1)]
            return value
    value["zzUnknown"] = {"deeper": {"still": [1, 2, {"x": None}]}}
    return value


def body_cases() -> Iterator[tuple[str, bytes]]:
    """Bodies that are not a JSON object at all, whatever the operation."""
    yield "not JSON", b"{this is not json"
    yield "truncated JSON", b'{"a": [1, 2'
    yield "JSON array", b"[]"
    yield "JSON array of objects", b'[{"jobName": "x"}]'
    yield "JSON null", b"null"
    yield "JSON string", b'"hello"'
    yield "JSON number", b"42"
    yield "JSON true", b"true"
    yield "NaN", b'{"maxResults": NaN}'
    yield "Infinity", b'{"limit": -Infinity}'
    yield "trailing garbage", b'{"a": 1} xyz'
    yield "invalid UTF-8", b'{"jobName": "\xff\xfe\xfd"}'
    yield "overlong UTF-8", b'{"jobName": "\xc0\xaf"}'
    yield "UTF-16 with BOM (not UTF-8)", "{}".encode("utf-16")
    yield "UTF-32 (not UTF-8)", "{}".encode("utf-32-le")
    yield "NUL bytes after the object", b'{"a": "b"}\x00\x00'
    yield "unknown top-level key", b'{"zzUnknown": 1}'
    yield "deeply nested array (100 000)", b"[" * 100_000 + b"]" * 100_000
    yield "deeply nested object (100 000)", b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    yield "nested arrays in a member (900)", b'{"tags": ' + b"[" * 900 + b"]" * 900 + b"}"
    yield "nested objects in a member (900)", b'{"tags": ' + b'{"a":' * 900 + b"1" + b"}" * 901
    yield "number of 5000 digits", b'{"maxResults": ' + b"9" * 5000 + b"}"
    yield "1e999", b'{"maxResults": 1e999}'
    yield "500 KiB of unknown keys", json.dumps({f"k{i}": "v" * 40 for i in range(10_000)}).encode()


# ---------------------------------------------------------------- cases per route
def operation_cases(
    route: str, operation: str, state: State, method: str, path: str, target: str | None, deep: bool
) -> Iterator[Case]:
    model = service_model("logs" if target else "batch")
    shape = model.operation_model(operation).input_shape
    for name, body in body_cases():
        yield Case(route, name, method, path, body, target)
    in_path = {"resourceArn"} if route.startswith("tags") else set()
    for member_name, member in shape.members.items():
        if member_name in in_path:
            continue
        base = valid_request(operation, state)
        for label, value, strict in variants(
            operation, member_name, member, base.get(member_name), state, DEPTH if deep else 0, True
        ):
            request = {**valid_request(operation, state), member_name: value}
            for key in in_path:
                request.pop(key, None)
            body = json.dumps(request).encode()
            yield Case(route, f"{member_name} {label}", method, path, body, target, strict)
        if member_name in shape.required_members:
            rest = {k: v for k, v in base.items() if k != member_name and k not in in_path}
            yield Case(
                route, f"{member_name} missing", method, path, json.dumps(rest).encode(), target
            )
            rest[member_name] = None
            yield Case(
                route, f"{member_name} null", method, path, json.dumps(rest).encode(), target
            )


def batch_post_operations() -> list[tuple[str, str]]:
    model = service_model("batch")
    out = []
    for name in model.operation_names:
        http_ = model.operation_model(name).http
        if http_["method"] == "POST" and "{" not in http_["requestUri"]:
            out.append((name, http_["requestUri"]))
    return out


def supported_operations() -> frozenset[str]:
    from batchbook.runtime.local import OPERATIONS

    return frozenset(OPERATIONS) | frozenset(LOGS_OPERATIONS)


def all_cases(state: State) -> list[Case]:
    supported = supported_operations()
    cases: list[Case] = []
    for operation, uri in batch_post_operations():
        route = f"batch {operation}"
        cases += operation_cases(route, operation, state, "POST", uri, None, operation in supported)
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            cases.append(Case(route, f"method {method}", method, uri, b"{}"))
    for operation in LOGS_OPERATIONS:
        route, target = f"logs {operation}", LOGS_TARGET + operation
        cases += operation_cases(route, operation, state, "POST", "/", target, True)
        cases.append(Case(route, "method GET", "GET", "/", b"{}", target))
        cases.append(Case(route, "method PUT", "PUT", "/", b"{}", target))
        cases.append(Case(route, "path /v1/x", "POST", "/v1/x", b"{}", target, strict=False))

    # The tags routes: the resource ARN in the path, the tag keys of DELETE in the query.
    valid = "/v1/tags/" + quote(state.hold_queue_arn, safe="")
    cases += operation_cases("tags POST", "TagResource", state, "POST", valid, None, True)
    prefix = f"arn:aws:batch:us-east-1:{ACCOUNT}"
    arns = {
        "empty ARN": "",
        "not an ARN": "not-an-arn",
        "S3 ARN": "arn:aws:s3:::bucket",
        "unknown job": f"{prefix}:job/{'0' * 36}",
        "unknown queue": f"{prefix}:job-queue/nope",
        "unknown job definition revision": f"{prefix}:job-definition/py:99",
        "unknown resource kind": f"{prefix}:widget/x",
        "oversize ARN": f"{prefix}:job-queue/" + "q" * 20_000,
        "NUL in ARN": state.hold_queue_arn + "\x00",
        "lone surrogate in ARN": f"{prefix}:job-queue/\udc80",
        "traversal ARN": f"{prefix}:job-queue/../../x",
        "child of a plain job": state.done_job_arn + ":7",
        "child index too big": state.done_job_arn + ":" + "9" * 30,
        "ARN of the queue with a suffix": state.hold_queue_arn + "/extra",
    }
    for label, arn in arns.items():
        path = "/v1/tags/" + quote(arn, safe="", errors="surrogatepass")
        tagged = b'{"tags": {"fuzz": "yes"}}'
        cases.append(Case("tags GET", label, "GET", path, b""))
        cases.append(Case("tags POST", label, "POST", path, tagged))
        cases.append(Case("tags DELETE", label, "DELETE", path + "?tagKeys=fuzz", b""))
    raw_paths = {
        "bad percent-encoding": "/v1/tags/%zz%f",
        "invalid UTF-8 percent-encoded": "/v1/tags/arn%3Aaws%3Abatch%FF%FE",
        "encoded slash": f"/v1/tags/{prefix}:job-queue%2F..%2Fq",
    }
    for label, path in raw_paths.items():
        cases.append(Case("tags GET", label, "GET", path, b""))
        cases.append(Case("tags DELETE", label, "DELETE", path + "?tagKeys=a", b""))
    queries = {
        "no tagKeys": ("", True),
        "empty tagKeys": ("?tagKeys=", True),
        "tagKeys without =": ("?tagKeys", True),
        "51 tagKeys": ("?" + "&".join(f"tagKeys=k{i}" for i in range(51)), True),
        "oversize tagKey": ("?tagKeys=" + "k" * 20_000, True),
        "unknown query parameter only": ("?zzUnknown=1", True),
        "bad percent-encoding in query": ("?tagKeys=%zz%f", False),
        "invalid UTF-8 in query": ("?tagKeys=%FF%FE", False),
    }
    for label, (query, strict) in queries.items():
        cases.append(Case("tags DELETE", label, "DELETE", valid + query, b"", strict=strict))
    for method in ("PUT", "PATCH"):
        cases.append(Case("tags", f"method {method}", method, valid, b'{"tags": {"a": "b"}}'))
    job_path = "/v1/tags/" + quote(state.done_job_arn, safe="")
    for name, body in body_cases():
        cases.append(Case("tags POST", f"job ARN, {name}", "POST", job_path, body))

    # Neither a Batch operation nor a Logs target.
    unknown = [
        "/",
        "/v1",
        "/v1/",
        "/v1/tags",
        "/v2/submitjob",
        "/v1/submitjob/extra",
        "/v1/submitjob/",
        "/v1/nosuchoperation",
        "/v1/%00",
        "/v1/%FF%FE",
        "/v1/..%2F..%2Fetc%2Fpasswd",
        "/../../../etc/passwd",
        "/v1/submitjob?x=1&x=2",
        "/batchbook/ping/extra",
        "/v1/" + "a" * 10_000,
        "/v1/listjobs;jsessionid=1",
        "/v1/describejobqueues#fragment",
    ]
    for path in unknown:
        for method in ("POST", "GET", "OPTIONS"):
            cases.append(Case("unknown path", f"{method} {path[:50]}", method, path, b"{}"))
    targets = [
        "Logs_20140328.PutLogEvents",
        "Logs_20140328.NoSuchOperation",
        "Logs_20140328.",
        "Logs_20140328." + "X" * 10_000,
        "Logs_20140328.describeloggroups",
        "Logs_20140328.DescribeLogGroups.Extra",
        "Logs_20140328.__init__",
        "Logs_20140328._DescribeLogGroups",
        "Logs_20140328._group",
        "Logs_20140328.call",
        "Logs_20140328.DescribeLogGroups\x00",
    ]
    for target in targets:
        cases.append(Case("logs unknown target", f"{target[:50]!r}", "POST", "/", b"{}", target))
    return cases


def signature_cases(service: Service) -> list[Case]:
    """A few deliberately unsigned or badly signed requests: 403, still AWS-shaped."""
    path, body = "/v1/describejobqueues", b"{}"
    good = signed_request(service, path, body)
    target = LOGS_TARGET + "DescribeLogGroups"
    logs = signed_request(service, "/", body, target=target)
    return [
        Case("signature", "unsigned", "POST", path, body, headers={}),
        Case(
            "signature", "garbage Authorization", "POST", path, body, headers={"Authorization": "x"}
        ),
        Case("signature", "body changed after signing", "POST", path, b"{ }", headers=good),
        Case("signature", "no X-Amz-Date", "POST", path, body, headers={**good, "X-Amz-Date": ""}),
        Case("signature", "logs signed for batch", "POST", "/", body, target, headers=good),
        Case("signature", "logs, target changed", "POST", "/", body, target + "x", headers=logs),
    ]


# ---------------------------------------------------------------- transport
@dataclass
class Answer:
    status: int | None  # None: no response (dropped connection, timeout)
    body: bytes
    error: str = ""


def send(service: Service, case: Case) -> Answer:
    """One request on a fresh connection, signed with the service's key (botocore's signer)."""
    headers = case.headers
    if headers is None:
        headers = signed_request(service, case.path, case.body, case.method, case.target)
    elif case.target:
        headers = {**headers, "X-Amz-Target": case.target}
    host, _, port = service.url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(case.method, case.path, body=case.body, headers=headers)
        resp = conn.getresponse()
        return Answer(resp.status, resp.read())
    except (OSError, http.client.HTTPException) as e:
        return Answer(None, b"", f"{type(e).__name__}: {e}")
    finally:
        conn.close()


def send_raw(service: Service, data: bytes) -> Answer:
    """Bytes on a socket as they are (what http.client will not send); the first answer."""
    host, _, port = service.url.removeprefix("http://").partition(":")
    chunks = []
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError as e:
            if not chunks:
                return Answer(None, b"", f"{type(e).__name__}: {e}")
    received = b"".join(chunks)
    if not received:
        return Answer(None, b"", "connection closed without a response")
    if not received.startswith(b"HTTP/"):
        return Answer(None, received[:200], "an answer without an HTTP status line")
    head, _, payload = received.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return Answer(int(head.split()[1]), payload[:length])


def raw_socket_cases(service: Service) -> Iterator[tuple[Case, bytes]]:
    """Requests http.client will not make: lying Content-Length, broken request lines."""
    host = service.url.removeprefix("http://")
    path, body = "/v1/describejobqueues", b"{}"
    signed = signed_request(service, path, body)  # Content-Length is not a signed header

    def request(extra: dict[str, str], request_line: str = f"POST {path} HTTP/1.1") -> bytes:
        lines = [request_line, f"Host: {host}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in {**signed, **extra}.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    lengths = {
        "Content-Length 1 MiB + 1": str((1 << 20) + 1),
        "Content-Length 10 GiB": str(10 << 30),
        "Content-Length 10**30": str(10**30),
        "Content-Length negative": "-5",
        "Content-Length not a number": "lots",
        "Content-Length hex": "0x10",
    }
    for label, length in lengths.items():
        yield Case("socket", label, "POST", path, body), request({"Content-Length": length})
    broken = {
        "request line without version": f"POST {path}",
        "request line of garbage": "\x01\x02 \x03",
        "request line of 70 000 characters": f"POST /v1/{'a' * 70_000} HTTP/1.1",
        "HTTP/2.0 request line": f"POST {path} HTTP/2.0",
    }
    for label, line in broken.items():
        data = request({"Content-Length": "2"}, line)
        yield Case("socket", label, "POST", path, body), data
    many = {f"X-Fuzz-{i}": "x" for i in range(200)}
    yield (
        Case("socket", "200 headers", "POST", path, body),
        request({"Content-Length": "2", **many}),
    )


# ---------------------------------------------------------------- checks
def names_a_field(body: bytes | None) -> bool:
    """Whether an error's message begins with the name of the field it is about."""
    try:
        message = json.loads(body or b"{}").get("message", "")
    except (ValueError, AttributeError):
        return False
    # "containerOverrides.command[0]: ...", "request body: ...", "operation 'X' is not ..."
    return bool(re.match(r"^\S+( \w+)?: |^operation '\w+' is not supported", message))


def problem(case: Case, answer: Answer) -> str | None:
    """What is wrong with the answer to ``case``, or None."""
    if answer.status is None:
        return f"no response ({answer.error})"
    if answer.status >= 500 or (case.strict and not 400 <= answer.status < 500):
        return f"status {answer.status}"
    try:
        body = json.loads(answer.body)
    except ValueError:
        return f"status {answer.status} with a body that is not JSON"
    if answer.status >= 400 and (
        not isinstance(body, dict) or not body.get("__type") or not body.get("message")
    ):
        return f"status {answer.status} without __type and message"
    return None


def setup_state(batch: Any) -> tuple[State, list[str]]:
    make_queue(batch, "q", max_vcpus=4)
    make_queue(batch, "hold-q", max_vcpus=1)
    make_jobdef(batch, "py", "print('hello from the fuzzed service')", tags={"team": "fuzz"})
    done = batch.submit_job(jobName="done", jobQueue="q", jobDefinition="py", tags={"a": "b"})
    (detail,) = wait_jobs(batch, [done["jobId"]])
    assert detail["status"] == "SUCCEEDED"
    # hold-q: a job runs there until the end; the fuzzing's victims wait for it.
    sleep = {"command": ["python", "-c", "import time; time.sleep(600)"]}
    blocker = batch.submit_job(
        jobName="blocker", jobQueue="hold-q", jobDefinition="py", containerOverrides=sleep
    )["jobId"]
    victims = batch.submit_job(
        jobName="victims",
        jobQueue="hold-q",
        jobDefinition="py",
        arrayProperties={"size": 300},
        dependsOn=[{"jobId": blocker}],
    )["jobId"]
    # Jobs that run while the fuzzing goes on; no fuzz case names them or their queue.
    slow = {"command": ["python", "-c", "import time; time.sleep(1); print('survived')"]}
    first = batch.submit_job(
        jobName="survivor-1", jobQueue="q", jobDefinition="py", containerOverrides=slow
    )["jobId"]
    second = batch.submit_job(
        jobName="survivor-2", jobQueue="q", jobDefinition="py", dependsOn=[{"jobId": first}]
    )["jobId"]
    array = batch.submit_job(
        jobName="survivor-array", jobQueue="q", jobDefinition="py", arrayProperties={"size": 3}
    )["jobId"]
    hold = batch.describe_job_queues(jobQueues=["hold-q"])["jobQueues"][0]
    jobdef = batch.describe_job_definitions(jobDefinitionName="py")["jobDefinitions"][0]
    state = State(
        queue="q",
        hold_queue="hold-q",
        hold_queue_arn=hold["jobQueueArn"],
        hold_ce="hold-q-ce",
        jobdef="py",
        jobdef_arn=jobdef["jobDefinitionArn"],
        done_job=done["jobId"],
        done_job_arn=done["jobArn"],
        blocker=blocker,
        log_stream=detail["container"]["logStreamName"],
        victims=iter([f"{victims}:{i}" for i in range(300)]),
    )
    return state, [first, second, array]


def health_problems(service: Service, batch: Any, logs: Any, survivors: list[str]) -> list[str]:
    """What no longer works after the fuzzing: boto3 calls, the scheduler, a restart."""
    problems = []
    try:
        queue = batch.describe_job_queues(jobQueues=["q"])["jobQueues"][0]
        assert queue["state"] == "ENABLED", queue
        group = logs.describe_log_groups()["logGroups"][0]
        assert group["logGroupName"] == LOGS_GROUP, group
    except Exception as e:
        problems.append(f"boto3 calls fail after the fuzzing: {type(e).__name__}: {e}")
    want = ["survivor-1", "survivor-2", "survivor-array", "after"]
    try:
        after = batch.submit_job(jobName="after", jobQueue="q", jobDefinition="py")["jobId"]
        jobs = wait_jobs(batch, [*survivors, after], timeout=10)
        got = [(j["jobName"], j["status"]) for j in jobs]
        if got != [(name, "SUCCEEDED") for name in want]:
            problems.append(f"jobs did not all succeed after the fuzzing: {got}")
    except Exception as e:
        problems.append(f"jobs after the fuzzing: {type(e).__name__}: {e}")
        after = ""
    # What was committed must load again: restart the service on the same state dir.
    stop_service(service.state_dir)
    try:
        restarted = start(service.state_dir)
        client = checked_client(restarted)
        jobs = client.describe_jobs(jobs=[*survivors, after] if after else survivors)["jobs"]
        got = [(j["jobName"], j["status"]) for j in jobs]
        if got != [(name, "SUCCEEDED") for name in want[: len(jobs)]] or len(jobs) < 3:
            problems.append(f"after a restart the jobs are {got}")
        new = client.submit_job(jobName="restarted", jobQueue="q", jobDefinition="py")["jobId"]
        status = wait_jobs(client, [new], timeout=10)[0]["status"]
        if status != "SUCCEEDED":
            problems.append(f"after a restart a new job ends {status}")
    except Exception as e:
        problems.append(f"the service does not come back after a restart: {type(e).__name__}: {e}")
    return problems


def tracebacks(service: Service) -> str:
    """The distinct innermost frames of the tracebacks in the service log, with a count each."""
    log = (service.state_dir / "service.log").read_text(errors="replace")
    counts: dict[str, int] = {}
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = [line for line in block.splitlines() if line.strip()]
        frames = [line.strip() for line in lines if line.strip().startswith('File "/work')]
        error = next((line for line in lines if not line.startswith(" ")), "?")
        key = f"{frames[-1] if frames else '?'} -> {error[:200]}"
        counts[key] = counts.get(key, 0) + 1
    return "\n".join(f"  {n} x {key}" for key, n in counts.items())


Failure = tuple[Case, Answer, str]


def describe(failures: list[Failure]) -> str:
    return "\n".join(
        f"  {c.route} :: {c.name} -> {what}: {a.body[:160]!r}" for c, a, what in failures
    )


# ---------------------------------------------------------------- the tests
def test_bad_requests_on_every_route_get_4xx(service: Service, batch: Any, logs: Any) -> None:
    state, survivors = setup_state(batch)
    cases = all_cases(state) + signature_cases(service)
    started = time.monotonic()
    failures: list[Failure] = []
    named = 0  # strict cases answered 400 naming the field (or the operation) at fault
    for case in cases:
        answer = send(service, case)
        if (what := problem(case, answer)) is not None:
            failures.append((case, answer, what))
        elif case.strict and answer.status == 400 and names_a_field(answer.body):
            named += 1

    raw = list(raw_socket_cases(service))
    for case, data in raw:
        answer = send_raw(service, data)
        if (what := problem(case, answer)) is not None:
            failures.append((case, answer, what))
    total, strict = len(cases) + len(raw), sum(c.strict for c in cases) + len(raw)
    print(
        f"\n{total} fuzz requests ({strict} strict, {named} of those answered 400 naming the "
        f"field or operation) in {time.monotonic() - started:.1f}s"
    )
    log = tracebacks(service)

    problems = health_problems(service, batch, logs, survivors)
    assert not problems, "the service is not healthy after the fuzzing:\n" + "\n".join(problems)
    assert not failures, (
        f"{len(failures)} of {total} fuzz requests were not answered as they should "
        f"(strict: an AWS-shaped 4xx; probe: no 5xx, a JSON body):\n{describe(failures)}\n"
        f"--- tracebacks in service.log ---\n{log}"
    )


def test_a_lone_surrogate_is_refused_and_the_engine_keeps_going(
    service: Service, batch: Any
) -> None:
    make_queue(batch, "q", max_vcpus=1)
    make_jobdef(batch, "py", "import time; time.sleep(600)")
    running = batch.submit_job(jobName="running", jobQueue="q", jobDefinition="py")["jobId"]
    deadline = time.monotonic() + 10
    while batch.describe_jobs(jobs=[running])["jobs"][0]["status"] != "RUNNING":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)
    body = json.dumps({"jobId": running, "reason": "\ud800"}).encode()
    case = Case("batch TerminateJob", "surrogate", "POST", "/v1/terminatejob", body, strict=False)
    answer = send(service, case)
    assert answer.status == 400 and b"lone surrogate" in answer.body, answer
    batch.terminate_job(jobId=running, reason="stopped after the bad request")
    quick = {"command": ["python", "-c", "pass"]}
    after = batch.submit_job(
        jobName="after", jobQueue="q", jobDefinition="py", containerOverrides=quick
    )["jobId"]
    statuses = [j["status"] for j in wait_jobs(batch, [running, after], timeout=5)]
    assert statuses == ["FAILED", "SUCCEEDED"], tracebacks(service)
    stop_service(service.state_dir)
    restarted = checked_client(start(service.state_dir))
    assert restarted.describe_jobs(jobs=[after])["jobs"][0]["status"] == "SUCCEEDED"
