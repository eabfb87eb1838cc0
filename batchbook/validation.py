"""Request validation against a dated copy of AWS's service models, plus the service limits.

The shapes (required members, types, enums, unknown members) come from the Batch,
CloudWatch Logs and EventBridge Scheduler service models shipped in ``batchbook/models`` (copied from botocore,
see ``models/index.json`` for the date and version), never from whichever botocore is
installed: botocore's copies change between releases (1.44 stopped requiring
``computeResources.subnets``), and the engine must behave the same everywhere. The
limits the model does not carry (array size, attempts, ...) are in :func:`check_range`
calls at the operations that need them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

from batchbook.errors import ClientError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

# enums AWS matches without regard to case (evaluateOnExit's "Retry" and "Exit")
CASE_INSENSITIVE = frozenset({"RetryAction"})


@functools.cache
def models_index() -> dict[str, str]:
    """Which file holds each service's model, and when and from where it was copied."""
    return json.loads(resources.files("batchbook").joinpath("models/index.json").read_text())


@functools.cache
def service_model(service: str = "batch") -> Any:
    """The pinned model of ``service`` ("batch", "logs" or "scheduler") as a botocore ServiceModel."""
    from botocore.model import ServiceModel

    path = resources.files("batchbook").joinpath("models", models_index()[service])
    return ServiceModel(json.loads(path.read_text()), service_name=service)


def validate_request(
    operation: str, params: Any, service: str = "batch", error: type[ClientError] = ClientError
) -> dict[str, Any]:
    """Check ``params`` against the input shape of ``operation``; return them."""
    shape = service_model(service).operation_model(operation).input_shape
    if params is None:
        params = {}
    try:
        _check(shape, params, "")
        for member, unit, low, high in LIMITS.get(operation, ()) if service == "batch" else ():
            value = params.get(member)
            if value is not None:
                size = value if unit == "" else len(value)
                if not low <= size <= high:
                    what = f"{size} {unit}".strip()
                    raise ClientError(
                        f"{member}: {what} is out of range; allowed {low} to {high} {unit}".rstrip()
                    )
    except ClientError as e:
        if error is ClientError:
            raise
        raise error(str(e)) from None
    return params


# Service limits AWS documents that botocore's model does not carry: operation ->
# (member, unit: "" for the value itself, else its length), low, high.
LIMITS: dict[str, tuple[tuple[str, str, int, int], ...]] = {
    "CancelJob": (("reason", "characters", 1, 1024),),
    "TerminateJob": (("reason", "characters", 1, 1024),),
    "DescribeComputeEnvironments": (("computeEnvironments", "items", 0, 100),),
    "DescribeJobQueues": (("jobQueues", "items", 0, 100),),
    "DescribeJobDefinitions": (("jobDefinitions", "items", 0, 100),),
    "RegisterJobDefinition": (("schedulingPriority", "", 0, 9999),),
    "SubmitJob": (("schedulingPriorityOverride", "", 0, 9999),),
}
_INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "float": (int, float),
    "double": (int, float),
    "timestamp": (int, float, str),
    "blob": (str, bytes),
}


def validate_response(operation: str, response: Any, service: str = "batch") -> None:
    """Check a response against the output shape of ``operation`` (the service's tests use it)."""
    _check(service_model(service).operation_model(operation).output_shape, response, "", True)


# Members the model calls required that AWS itself leaves out: a job that has not
# started has no startedAt in DescribeJobs.
RESPONSE_OMITS = frozenset({("JobDetail", "startedAt")})


def _check(shape: Any, value: Any, path: str, response: bool = False) -> None:
    name = path or "request"
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise ClientError(f"{name}: expected an object, got {type(value).__name__}")
        for key in value:
            if key not in shape.members:
                allowed = ", ".join(shape.members)
                raise ClientError(f"{_join(path, key)}: unknown parameter; allowed: {allowed}")
        for key in shape.required_members:
            if value.get(key) is None and not (response and (shape.name, key) in RESPONSE_OMITS):
                raise ClientError(f"{_join(path, key)}: required parameter is missing")
        for key, item in value.items():
            if item is not None:
                _check(shape.members[key], item, _join(path, key), response)
    elif kind == "list":
        if not isinstance(value, list):
            raise ClientError(f"{name}: expected a list, got {type(value).__name__}")
        _check_bounds(shape, len(value), name, "items")
        for i, item in enumerate(value):
            _check(shape.member, item, f"{name}[{i}]", response)
    elif kind == "map":
        if not isinstance(value, dict):
            raise ClientError(f"{name}: expected an object, got {type(value).__name__}")
        for key, item in value.items():
            _check(shape.key, key, f"{name} key")
            _check(shape.value, item, f"{name}.{key}", response)
    else:
        types = _PY_TYPES.get(kind, (object,))
        if not isinstance(value, types) or (kind != "boolean" and isinstance(value, bool)):
            raise ClientError(f"{name}: expected {kind}, got {type(value).__name__} {value!r:.60}")
        enum = getattr(shape, "enum", None)
        if (
            enum
            and value not in enum
            and not (shape.name in CASE_INSENSITIVE and str(value).upper() in enum)
        ):
            raise ClientError(f"{name}: {value!r:.60} is not one of {', '.join(enum)}")
        if kind in ("integer", "long") and isinstance(value, int):
            low, high = _INT_RANGE[kind]
            if not low <= value <= high:
                raise ClientError(f"{name}: {value} does not fit a {kind} ({low} to {high})")
            _check_bounds(shape, value, name, "")
        elif kind == "string" and isinstance(value, str):
            _check_bounds(shape, len(value), name, "characters")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ClientError(f"{name}: not valid Unicode (a lone surrogate)") from None


def _check_bounds(shape: Any, size: int, name: str, unit: str) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if (low is not None and size < low) or (high is not None and size > high):
        allowed = f"{low if low is not None else 0} to {high if high is not None else 'any'}"
        raise ClientError(
            f"{name}: {size} {unit} is out of range; allowed {allowed} {unit}".replace(
                "  ", " "
            ).rstrip()
        )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_name(field: str, value: str) -> None:
    if not NAME_RE.match(value):
        raise ClientError(
            f"{field}: {value!r:.140} is not valid; use 1-128 letters, digits, hyphens "
            "and underscores, starting with a letter or digit"
        )


Renaming = Callable[[str, dict[str, str]], str]  # (key, lower-cased member -> member) -> new key


def sdk_input(operation: str, request: dict[str, Any], service: str = "batch") -> dict[str, Any]:
    """``request`` with its member names as the AWS SDKs spell them (``jobName`` ->
    ``JobName``): what an EventBridge Scheduler universal target's Input holds. Map keys
    (tags, parameters) are data and stay as they are."""
    shape = service_model(service).operation_model(operation).input_shape
    return _renamed(shape, request, lambda key, _: key[:1].upper() + key[1:])  # type: ignore[no-any-return]


def from_sdk_input(operation: str, value: Any, service: str = "batch") -> dict[str, Any]:
    """The request an SDK-cased universal target Input stands for (see :func:`sdk_input`);
    a ClientError names a member the operation does not have."""
    shape = service_model(service).operation_model(operation).input_shape
    if not isinstance(value, dict):
        raise ClientError(f"Input: expected a JSON object, got {type(value).__name__}")

    def member_of(key: str, members: dict[str, str]) -> str:
        if key.lower() not in members:
            allowed = ", ".join(m[:1].upper() + m[1:] for m in members.values())
            raise ClientError(f"Input.{key}: not a {operation} parameter; allowed: {allowed}")
        return members[key.lower()]

    return _renamed(shape, value, member_of)  # type: ignore[no-any-return]


def _renamed(shape: Any, value: Any, rename: Renaming) -> Any:
    """``value`` (of ``shape``) with every structure's member names passed through ``rename``."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = {m.lower(): m for m in shape.members}
        out = {}
        for key, item in value.items():
            target = shape.members.get(members.get(key.lower(), ""))
            out[rename(key, members)] = item if target is None else _renamed(target, item, rename)
        return out
    if kind == "list" and isinstance(value, list):
        return [_renamed(shape.member, item, rename) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _renamed(shape.value, v, rename) for k, v in value.items()}
    return value
