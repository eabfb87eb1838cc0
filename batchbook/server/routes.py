"""From an HTTP request to (service, operation, request dict), as botocore's models lay them out.

Batch is REST-JSON: ``POST /v1/<operation in lower case>`` with a JSON body, plus
the tags routes ``/v1/tags/{resourceArn}`` (GET list, POST tag, DELETE untag with
``tagKeys`` in the query). CloudWatch Logs is JSON 1.1: ``POST /`` with
``X-Amz-Target: Logs_20140328.<Operation>``. EventBridge Scheduler is REST-JSON with its
names in the path and query (``GET /schedules/{Name}?groupName=g``), laid out by its model.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from batchbook.errors import ClientError, ValidationError
from batchbook.validation import service_model

LOGS_TARGET = "Logs_20140328."
TAGS_PREFIX = "/v1/tags/"
TAG_OPERATIONS = {"GET": "ListTagsForResource", "POST": "TagResource", "DELETE": "UntagResource"}
# batchbook's own extension (not AWS): long-poll for the next state change, see LocalBatch.wait_for_change
WAIT_PATH = "/batchbook/wait"
WAIT_OPERATION = "BatchbookWaitForChange"
# ...and what its workers run (their interpreter is the service's): Python and package versions
INTERPRETER_PATH = "/batchbook/interpreter"
INTERPRETER_OPERATION = "BatchbookDescribeInterpreter"
# ...and what a local schedule fired and missed (EventBridge Scheduler keeps no such list)
FIRINGS_PATH = "/batchbook/schedule-firings"
FIRINGS_OPERATION = "BatchbookScheduleFirings"
EXTENSIONS = {
    WAIT_PATH: WAIT_OPERATION,
    INTERPRETER_PATH: INTERPRETER_OPERATION,
    FIRINGS_PATH: FIRINGS_OPERATION,
}
SCHEDULER_PREFIXES = ("/schedules", "/schedule-groups", "/tags/")  # Batch's tags: /v1/tags/


@dataclass(frozen=True)
class Route:
    service: str  # "batch", "logs" or "scheduler": also the SigV4 service name
    operation: str
    request: dict[str, Any]


@functools.cache
def batch_operations() -> dict[str, str]:
    """``/v1/submitjob`` -> ``SubmitJob`` for every POST operation in botocore's Batch model."""
    model = service_model("batch")
    out = {}
    for name in model.operation_names:
        http = model.operation_model(name).http
        if http["method"] == "POST" and "{" not in http["requestUri"]:
            out[http["requestUri"]] = name
    return out


@functools.cache
def scheduler_operations() -> list[tuple[str, re.Pattern[str], str]]:
    """(method, path pattern, operation) for every operation in the Scheduler model that
    the local engine answers (not its tags: schedule groups carry none here)."""
    model = service_model("scheduler")
    out = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        if "{ResourceArn}" in http["requestUri"]:
            continue
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(http["requestUri"]))
        out.append((http["method"], re.compile(pattern), name))
    return out


def service_of(raw_path: str, headers: dict[str, str]) -> str:
    """Which API a request is for, known before its signature is checked."""
    if headers.get("x-amz-target", "").startswith(LOGS_TARGET):
        return "logs"
    return "scheduler" if raw_path.startswith(SCHEDULER_PREFIXES) else "batch"


def _scheduler_route(method: str, path: str, query: str, body: bytes) -> Route:
    for verb, pattern, name in scheduler_operations():
        m = pattern.fullmatch(path)
        if m is None or verb != method:
            continue
        shape = service_model("scheduler").operation_model(name).input_shape
        request = _json_object(body) if method in ("POST", "PUT") else {}
        params = parse_qs(query, keep_blank_values=True)
        for member, member_shape in shape.members.items():
            where, wire = (
                member_shape.serialization.get("location"),
                member_shape.serialization.get("name", member),
            )
            if where == "uri":
                request[member] = unquote(m[wire])
            elif where == "querystring" and wire in params:
                value: Any = params[wire][-1]
                if member_shape.type_name == "integer":
                    try:
                        value = int(value)
                    except ValueError:
                        raise ValidationError(
                            f"{member}: {value!r:.40} is not a whole number"
                        ) from None
                request[member] = value
        return Route("scheduler", name, request)
    if path.startswith("/tags/"):
        raise ValidationError(
            "EventBridge Scheduler's tags (ListTagsForResource, TagResource, UntagResource) "
            "are not kept by the local engine"
        )
    raise ValidationError(f"{method} {path[:200]}: no such EventBridge Scheduler operation here")


def route(method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Route:
    path, _, query = raw_path.partition("?")
    target = headers.get("x-amz-target", "")
    if target.startswith(LOGS_TARGET):
        if method != "POST":
            raise ClientError(f"CloudWatch Logs requests are POST, not {method}")
        return Route("logs", target[len(LOGS_TARGET) :], _json_object(body))
    if path.startswith(SCHEDULER_PREFIXES):
        return _scheduler_route(method, path, query, body)
    if path in EXTENSIONS and method == "POST":
        return Route("batch", EXTENSIONS[path], _json_object(body))
    if path.startswith(TAGS_PREFIX):
        operation = TAG_OPERATIONS.get(method)
        if operation is None:
            raise ClientError(f"{path}: method {method} not allowed; use GET, POST or DELETE")
        request = _json_object(body) if method == "POST" else {}
        request["resourceArn"] = unquote(path[len(TAGS_PREFIX) :])
        if method == "DELETE":
            request["tagKeys"] = parse_qs(query, keep_blank_values=True).get("tagKeys", [])
        return Route("batch", operation, request)
    operation = batch_operations().get(path.lower())
    if operation is None:
        raise ClientError(
            f"{method} {path[:200]}: no such Batch operation; Batch operations are POST /v1/<operation>"
        )
    if method != "POST":
        raise ClientError(f"{path}: method {method} not allowed; use POST")
    return Route("batch", operation, _json_object(body))


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body.decode("utf-8"))  # AWS's JSON is UTF-8; no guessing UTF-16/32
    except UnicodeDecodeError as e:
        raise ClientError(f"request body: not UTF-8 ({e})") from None
    except ValueError as e:
        raise ClientError(f"request body: not valid JSON ({e})") from None
    except RecursionError:
        raise ClientError("request body: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ClientError(f"request body: expected a JSON object, got {type(value).__name__}")
    return value
