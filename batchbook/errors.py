"""The one exception tree of batchbook.

Every error batchbook raises on purpose is a :class:`BatchbookError`. Errors that
mirror an AWS error carry the AWS error type and HTTP status, so the local
service can answer exactly as AWS does and the AWS backend can map botocore's
errors back onto the same classes.

    BatchbookError
    ├── ClientError            (ClientException, HTTP 400: bad request)
    │   ├── ThrottlingError    (TooManyRequestsException, HTTP 429)
    │   ├── InvalidParameter   (InvalidParameterException: CloudWatch Logs' bad request)
    │   └── ResourceNotFound   (ResourceNotFoundException: no such log group or stream)
    ├── AuthenticationError    (HTTP 403: unsigned, unknown key or bad signature)
    ├── ServerError            (ServerException, HTTP 500: a real internal fault)
    │   └── StorageFull        (HTTP 503: the disk under the state dir is full; retry later)
    ├── ServiceUnavailable     (the local service could not be started or reached)
    ├── StateDirInUse          (another engine owns the state directory)
    ├── UnsafeStateDir         (a state directory not yours, or writable by others)
    ├── SerializationError     (a function, input or result cannot be pickled)
    ├── EnvironmentMismatch    (the worker's Python or packages differ from this one)
    ├── RemoteError            (an input's function call raised on the worker)
    ├── JobFailed              (a job or input ended without a result: cancelled, OOM, timeout...)
    │   └── JobCannotRun       (it can never start: it needs more than its queue has)
    └── BudgetExceeded         (a map's estimate, or its running cost, is above its budget=)
"""

from __future__ import annotations

import re

# "<field>: <what is wrong>", as batchbook's messages (and the local service's) begin
_FIELD = re.compile(r"^([A-Za-z_][\w.\[\]-]*): ")


class BatchbookError(Exception):
    """Base class of every error batchbook raises on purpose.

    An error that came back from a service (boto3's, mapped at the boundary) also keeps
    which operation it answered, the request id, and the HTTP status.
    """

    operation: str | None = None  # e.g. "SubmitJob"
    request_id: str | None = None  # the service's x-amzn-RequestId
    http_status: int | None = None


class ClientError(BatchbookError):
    """A request was malformed or not allowed; the message names the field."""

    aws_type = "ClientException"
    http_status = 400

    @property
    def field(self) -> str | None:
        """The field the message names first (``computeResources.maxvCpus: ...``), if any."""
        match = _FIELD.match(str(self))
        return match.group(1) if match else None


class ThrottlingError(ClientError):
    """Too many requests; retry with backoff."""

    aws_type = "TooManyRequestsException"
    http_status = 429


class InvalidParameter(ClientError):
    """A CloudWatch Logs request was malformed."""

    aws_type = "InvalidParameterException"


class ResourceNotFound(ClientError):
    """The named resource (a log group or stream, a stored run) does not exist."""

    aws_type = "ResourceNotFoundException"


class ScheduleNotFound(ResourceNotFound):
    """EventBridge Scheduler has no schedule (or schedule group) of that name."""

    http_status = 404


class ValidationError(ClientError):
    """An EventBridge Scheduler request was malformed."""

    aws_type = "ValidationException"


class Conflict(ClientError):
    """A schedule (or schedule group) of that name exists already."""

    aws_type = "ConflictException"
    http_status = 409


class AuthenticationError(BatchbookError):
    """A request to the local service was not signed with the local access key."""

    http_status = 403

    def __init__(self, message: str, aws_type: str = "UnrecognizedClientException"):
        super().__init__(message)
        self.aws_type = aws_type


class ServerError(BatchbookError):
    """An internal fault of the engine (never used for a bad request)."""

    aws_type = "ServerException"
    http_status = 500


class StorageFull(ServerError):
    """The disk that holds the state dir has no room: nothing new is accepted until it has.
    A 503, which clients retry with backoff; what was accepted before is kept."""

    http_status = 503


class ServiceUnavailable(BatchbookError):
    """The local service could not be started or does not answer."""


class StateDirInUse(BatchbookError):
    """Another engine process already owns this state directory."""


class UnsafeStateDir(BatchbookError):
    """A state directory (or its key file) not owned by this user, or open to others: one
    planted by someone else would run their commands as you. The message names the path."""


class SerializationError(BatchbookError):
    """A function, an input or a result could not be pickled; the message names it."""


class EnvironmentMismatch(BatchbookError):
    """The worker would run another Python or other package versions than this process."""


class RemoteError(BatchbookError):
    """The function raised on the worker: the remote exception with its traceback."""

    def __init__(self, index: int, type_name: str, message: str, traceback: str):
        super().__init__(f"input {index}: {type_name}: {message}")
        self.index = index
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __str__(self) -> str:
        return f"input {self.index} raised {self.type_name}: {self.message}\n\nRemote traceback:\n{self.traceback}"

    def _render_traceback_(self) -> list[str]:
        """IPython shows the remote traceback instead of the local one."""
        return [
            f"RemoteError: input {self.index} raised on the worker:",
            *self.traceback.rstrip().splitlines(),
        ]


class JobFailed(BatchbookError):
    """A job, or an input of a map, ended without a result (cancelled, timed out, OOM...)."""


class JobCannotRun(JobFailed):
    """A job waits for what its queue can never give it (more vCPUs, memory or GPUs than its
    compute environments have): Batch accepts it and it stays RUNNABLE; the reason says why."""


class BudgetExceeded(BatchbookError):
    """A map's estimated or running cost is above its ``budget=``: before submitting,
    nothing was submitted; while running, the rest was cancelled."""
