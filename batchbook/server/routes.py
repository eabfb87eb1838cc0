"""From an HTTP request to (service, operation, request dict), as botocore's models lay them out.

Batch is REST-JSON: ``POST /v1/<operation in lower case>`` with a JSON body, plus
the tags routes ``/v1/tags/{resourceArn}`` (GET list, POST tag, DELETE untag with
``tagKeys`` in the query). CloudWatch Logs is JSON 1.1: ``POST /`` with
``X-Amz-Target: Logs_20140328.<Operation>``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from batchbook.errors import ClientError
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
EXTENSIONS = {WAIT_PATH: WAIT_OPERATION, INTERPRETER_PATH: INTERPRETER_OPERATION}


@dataclass(frozen=True)
class Route:
    service: str  # "batch" or "logs": also the SigV4 service name
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


def service_of(raw_path: str, headers: dict[str, str]) -> str:
    """Which API a request is for, known before its signature is checked."""
    return "logs" if headers.get("x-amz-target", "").startswith(LOGS_TARGET) else "batch"


def route(method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Route:
    path, _, query = raw_path.partition("?")
    target = headers.get("x-amz-target", "")
    if target.startswith(LOGS_TARGET):
        if method != "POST":
            raise ClientError(f"CloudWatch Logs requests are POST, not {method}")
        return Route("logs", target[len(LOGS_TARGET) :], _json_object(body))
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
