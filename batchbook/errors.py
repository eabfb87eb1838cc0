"""The one exception tree of batchbook.

Every error batchbook raises on purpose is a :class:`BatchbookError`. Errors that
mirror an AWS error carry the AWS error type and HTTP status, so the local
service can answer exactly as AWS does and the AWS backend can map botocore's
errors back onto the same classes.

    BatchbookError
    ├── ClientError            (ClientException, HTTP 400: bad request)
    │   └── ThrottlingError    (TooManyRequestsException, HTTP 429)
    ├── ServerError            (ServerException, HTTP 500: a real internal fault)
    └── StateDirInUse          (another engine owns the state directory)
"""

from __future__ import annotations


class BatchbookError(Exception):
    """Base class of every error batchbook raises on purpose."""


class ClientError(BatchbookError):
    """A request was malformed or not allowed; the message names the field."""

    aws_type = "ClientException"
    http_status = 400


class ThrottlingError(ClientError):
    """Too many requests; retry with backoff."""

    aws_type = "TooManyRequestsException"
    http_status = 429


class ServerError(BatchbookError):
    """An internal fault of the engine (never used for a bad request)."""

    aws_type = "ServerException"
    http_status = 500


class StateDirInUse(BatchbookError):
    """Another engine process already owns this state directory."""
