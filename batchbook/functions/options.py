"""How a run runs, kept apart from what it runs on: :class:`RunOptions`, checked at the
boundary with clear errors that name the option; and how its inputs are chunked."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from batchbook.errors import ClientError

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_FACTORS = {
    "B": 1,
    "K": 1000, "KB": 1000, "KI": 1024, "KIB": 1024,
    "M": 1000**2, "MB": 1000**2, "MI": 1024**2, "MIB": 1024**2,
    "G": 1000**3, "GB": 1000**3, "GI": 1024**3, "GIB": 1024**3,
    "T": 1000**4, "TB": 1000**4, "TI": 1024**4, "TIB": 1024**4,
}  # fmt: skip


DEFAULT_MEMORY_MIB = 2048


@dataclass(frozen=True)
class RunOptions:
    """The options of ``batch.map``, ``batch.submit`` and ``batch.Executor``, checked:
    sizes in MiB, exception classes by name, dependencies as job ids."""

    chunksize: int | None = None
    name: str | None = None
    vcpus: float = 1.0
    memory_mib: int = DEFAULT_MEMORY_MIB
    gpus: int = 0
    queue: str | None = None
    retries: int = 0
    retry_on: tuple[str, ...] = ()
    timeout: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    max_failures: int | None = None
    budget: float | None = None  # USD: the estimate must be below it, and the running cost
    reuse: bool = False  # give back the run of the same code, inputs and options (reuse.py)
    timeout_per_input: float | None = None  # seconds, enforced by the worker for each input
    secrets: dict[str, str] = field(default_factory=dict)  # env name -> Secrets Manager/SSM ARN

    @classmethod
    def checked(
        cls,
        *,
        chunksize: int | None = None,
        name: str | None = None,
        vcpus: float = 1,
        memory: int | str | None = None,
        gpus: int = 0,
        queue: str | None = None,
        retries: int = 0,
        retry_on: Iterable[type[BaseException] | str] | type[BaseException] | str | None = None,
        timeout: int | None = None,
        env: dict[str, str] | None = None,
        depends_on: Any = None,
        max_failures: int | None = None,
        budget: float | None = None,
        reuse: bool = False,
        timeout_per_input: float | None = None,
        secrets: dict[str, str] | None = None,
    ) -> RunOptions:
        """The options as given to ``batch.map``; a ClientError names the first bad one."""
        if chunksize is not None:
            check_int("chunksize", chunksize, 1)
        if timeout is not None:
            check_int("timeout", timeout, 1)
        if max_failures is not None:
            check_int("max_failures", max_failures, 0)
        if budget is not None and (
            isinstance(budget, bool)
            or not isinstance(budget, int | float)
            or not 0 < budget < float("inf")
        ):
            raise ClientError(f"budget: {budget!r:.40} is not an amount of USD above 0")
        if timeout_per_input is not None and (
            isinstance(timeout_per_input, bool)
            or not isinstance(timeout_per_input, int | float)
            or not 0 < timeout_per_input < 366 * 86_400
        ):
            raise ClientError(
                f"timeout_per_input: {timeout_per_input!r:.40} is not a number of seconds above 0"
            )
        if not isinstance(reuse, bool):
            raise ClientError(f"reuse: {reuse!r:.40} is not True or False")
        return cls(
            chunksize=chunksize,
            name=name,
            vcpus=check_vcpus(vcpus),
            memory_mib=parse_memory(memory if memory is not None else DEFAULT_MEMORY_MIB),
            gpus=check_int("gpus", gpus, 0, 64),
            queue=queue,
            retries=check_int("retries", retries, 0, 9),
            retry_on=retry_names(retry_on),
            timeout=timeout,
            env=check_env(env),
            depends_on=dependency_ids(depends_on),
            max_failures=max_failures,
            budget=float(budget) if budget is not None else None,
            reuse=reuse,
            timeout_per_input=float(timeout_per_input) if timeout_per_input else None,
            secrets=check_secrets(secrets),
        )

    @classmethod
    def from_user(cls, options: dict[str, Any]) -> RunOptions:
        """``checked(**options)``, where an unknown option is a ClientError naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)} - {"memory_mib"} | {"memory"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ClientError(
                f"{unknown[0]}: not an option; the options are {', '.join(sorted(known))}"
            )
        return cls.checked(**options)

    def replace(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self, **changes)


def retry_names(retry_on: Any) -> tuple[str, ...]:
    """Exception classes (or their names) -> qualified names, as the worker matches them."""
    if retry_on is None:
        return ()
    items = [retry_on] if isinstance(retry_on, type | str) else list(retry_on)
    names = []
    for item in items:
        if isinstance(item, type) and issubclass(item, BaseException):
            names.append(f"{item.__module__}.{item.__qualname__}")
        elif isinstance(item, str) and item:
            names.append(item)
        else:
            raise ClientError(f"retry_on: {item!r:.40} is not an exception class or name")
    return tuple(names)


def dependency_ids(depends_on: Any) -> tuple[str, ...]:
    """The job ids of MapJobs, Jobs (each has its ``job_id``) and job ids."""
    if depends_on is None:
        return ()
    items = depends_on if isinstance(depends_on, list | tuple | set) else [depends_on]
    ids = []
    for item in items:
        job_id = item if isinstance(item, str) else getattr(item, "job_id", None)
        if not isinstance(job_id, str) or not job_id:
            raise ClientError(f"depends_on: {item!r:.40} is not a MapJob, a Job or a job id")
        ids.append(job_id)
    return tuple(ids)


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_age(value: Any) -> float:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"90s"``, ``"2w"`` or a number of seconds -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    m = _AGE.match(str(value)) if isinstance(value, str) else None
    if m is None:
        raise ClientError(
            f"older_than: {value!r:.40} is not an age; use seconds or a string like "
            "'7d', '12h', '30m', '90s', '2w'"
        )
    return float(m.group(1)) * _AGE_UNITS[m.group(2)]


def parse_memory(value: Any) -> int:
    """``"2 GiB"``, ``"512MiB"``, ``"1.5GB"`` or an int (MiB) -> MiB, rounded up."""
    if isinstance(value, bool):
        raise ClientError(
            f"memory: {value!r} is not a size; use an int (MiB) or a string like '2 GiB'"
        )
    if isinstance(value, int):
        mib = value
    else:
        m = _MEMORY.match(str(value))
        if m is None:
            raise ClientError(
                f"memory: {value!r:.40} is not a size; use an int (MiB) or a string like "
                "'2 GiB', '512MiB', '1.5 GB'"
            )
        unit = (m.group(2) or "MiB").upper()
        mib = math.ceil(float(m.group(1)) * _FACTORS[unit] / 1024**2)
    if mib < 4:
        raise ClientError(f"memory: {value!r} is below the 4 MiB that a container needs")
    return mib


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f"{low} to {high}" if high is not None else f"{low} or more"
        raise ClientError(f"{name}: {value!r:.40} is not allowed; use a whole number, {allowed}")
    return value


def check_vcpus(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.25 <= value <= 256:
        raise ClientError(f"vcpus: {value!r:.40} is not allowed; use a number from 0.25 to 256")
    return float(value)


_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:(secretsmanager|ssm):[a-z0-9-]*:\d{12}:(secret|parameter)[:/].+$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_secrets(secrets: Any) -> dict[str, str]:
    """``{"NAME": "arn:aws:secretsmanager:..." | "arn:aws:ssm:..."}``, checked."""
    if secrets is None:
        return {}
    if not isinstance(secrets, dict):
        raise ClientError("secrets: give a dict of environment variable name -> secret ARN")
    for name, arn in secrets.items():
        if not (isinstance(name, str) and _ENV_NAME.match(name)):
            raise ClientError(f"secrets: {name!r:.40} is not an environment variable name")
        if not (isinstance(arn, str) and _SECRET_ARN.match(arn)):
            raise ClientError(
                f"secrets[{name!r}]: {arn!r:.80} is not the ARN of a Secrets Manager secret "
                "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME) or of an SSM parameter "
                "(arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)"
            )
    return dict(secrets)


def check_env(env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and k for k in env):
        raise ClientError("env: use a dict of variable name -> value")
    bad = [k for k in env if k.startswith("AWS_BATCH")]
    if bad:
        raise ClientError(
            f"env: {bad[0]!r} is not allowed; names starting with AWS_BATCH are Batch's own"
        )
    return {k: str(v) for k, v in env.items()}


# Every chunk costs a process start, so there are few: two per worker slot, to balance
# uneven inputs, or one when each chunk holds so many inputs that their differences
# average out (the spread of a sum of k costs grows like sqrt(k), the sum like k).
CHUNKS_PER_SLOT = 2
MANY_INPUTS_PER_SLOT = 500


def chunk_bounds_of(n: int, chunksize: int) -> list[tuple[int, int]]:
    """The input index ranges of the chunks of a run of ``n`` inputs."""
    return [(start, min(start + chunksize, n)) for start in range(0, n, chunksize)]


def chunk_bounds(n: int, chunksize: int | None, parallelism: int) -> list[tuple[int, int]]:
    """Index ranges of the chunks: ``chunksize`` inputs each, or 1-2 per worker slot."""
    if n == 0:
        return []
    if chunksize is None:
        per_slot = 1 if n >= MANY_INPUTS_PER_SLOT * parallelism else CHUNKS_PER_SLOT
        chunks = min(n, max(1, per_slot * parallelism))
        chunksize = math.ceil(n / chunks)
    bounds = chunk_bounds_of(n, chunksize)
    if len(bounds) > 10_000:
        raise ClientError(
            f"chunksize: {chunksize} makes {len(bounds)} chunks; an array job has at most 10,000 "
            f"children, so use chunksize >= {math.ceil(n / 10_000)}"
        )
    return bounds
