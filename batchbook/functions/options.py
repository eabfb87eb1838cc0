"""Checking map/submit options at the boundary: clear errors that name the option."""

from __future__ import annotations

import math
import re
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
    else:
        check_int("chunksize", chunksize, 1)
    bounds = chunk_bounds_of(n, chunksize)
    if len(bounds) > 10_000:
        raise ClientError(
            f"chunksize: {chunksize} makes {len(bounds)} chunks; an array job has at most 10,000 "
            f"children, so use chunksize >= {math.ceil(n / 10_000)}"
        )
    return bounds
