"""Request validation against botocore's Batch service model plus the service limits.

The shapes (required members, types, enums, unknown members) come from the
service model that ships with botocore, so they never drift from what AWS and
boto3 accept. The limits the model does not carry (array size, attempts, ...)
are in :func:`check_range` calls at the operations that need them.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from batchbook.errors import ClientError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


@functools.cache
def service_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("batch")


def validate_request(operation: str, params: Any) -> dict[str, Any]:
    """Check ``params`` against the input shape of ``operation``; return them."""
    shape = service_model().operation_model(operation).input_shape
    if params is None:
        params = {}
    _check(shape, params, "")
    return params


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


def _check(shape: Any, value: Any, path: str) -> None:
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
            if value.get(key) is None:
                raise ClientError(f"{_join(path, key)}: required parameter is missing")
        for key, item in value.items():
            if item is not None:
                _check(shape.members[key], item, _join(path, key))
    elif kind == "list":
        if not isinstance(value, list):
            raise ClientError(f"{name}: expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            _check(shape.member, item, f"{name}[{i}]")
    elif kind == "map":
        if not isinstance(value, dict):
            raise ClientError(f"{name}: expected an object, got {type(value).__name__}")
        for key, item in value.items():
            _check(shape.key, key, f"{name} key")
            _check(shape.value, item, f"{name}.{key}")
    else:
        types = _PY_TYPES.get(kind, (object,))
        if not isinstance(value, types) or (kind != "boolean" and isinstance(value, bool)):
            raise ClientError(f"{name}: expected {kind}, got {type(value).__name__} {value!r:.60}")
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            raise ClientError(f"{name}: {value!r:.60} is not one of {', '.join(enum)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_range(field: str, value: int | float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise ClientError(f"{field}: {value} is out of range; allowed {low:g} to {high:g}")


def check_name(field: str, value: str) -> None:
    if not NAME_RE.match(value):
        raise ClientError(
            f"{field}: {value!r:.140} is not valid; use 1-128 letters, digits, hyphens "
            "and underscores, starting with a letter or digit"
        )
