"""What a job asks for (vCPU, memory, GPU) and what a compute environment offers."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from batchbook.errors import ClientError

# Local-only knobs ride on compute-environment tags, the one free-form field AWS has.
MEMORY_TAG = "batchbook:memoryMiB"
GPU_TAG = "batchbook:gpus"
# On a SPOT or FARGATE_SPOT environment: the vCPUs spot grants at most (rehearsing a
# shortage: jobs beyond it wait with AWS's CAPACITY reason); default all of maxvCpus
SPOT_CAPACITY_TAG = "batchbook:spotCapacityVcpus"


@dataclass(frozen=True)
class Resources:
    """Amounts in milli-vCPUs, MiB and whole GPUs (integers, so sums are exact)."""

    vcpu_milli: int
    memory_mib: int
    gpus: int = 0

    def fits_in(self, other: Resources) -> bool:
        return (
            self.vcpu_milli <= other.vcpu_milli
            and self.memory_mib <= other.memory_mib
            and self.gpus <= other.gpus
        )

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpu_milli + other.vcpu_milli,
            self.memory_mib + other.memory_mib,
            self.gpus + other.gpus,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpu_milli - other.vcpu_milli,
            self.memory_mib - other.memory_mib,
            self.gpus - other.gpus,
        )

    def describe(self) -> str:
        return f"{self.vcpu_milli / 1000:g} vCPU, {self.memory_mib} MiB, {self.gpus} GPU"


NONE = Resources(0, 0, 0)


FARGATE_VCPUS = (0.25, 0.5, 1, 2, 4, 8, 16)
_WHOLE = re.compile(r"^\d{1,12}$")


def job_resources(
    container: dict[str, Any], overrides: dict[str, Any] | None, fargate: bool = False
) -> Resources:
    """Resolve a job's requirements: overrides over the job definition, requirements over
    legacy fields. VCPU 0.25 to 10,000 in steps of 0.25 (on Fargate one of FARGATE_VCPUS;
    below 1 on EC2 is a local difference, AWS wants whole vCPUs there); MEMORY a whole
    number of MiB from 4; GPU a whole number."""
    merged = _requirements(container, "containerProperties")
    if overrides:
        merged.update(_requirements(overrides, "containerOverrides"))
    if "VCPU" not in merged:
        raise ClientError(
            "containerProperties.resourceRequirements: a VCPU value is required "
            "(or the legacy containerProperties.vcpus)"
        )
    if "MEMORY" not in merged:
        raise ClientError(
            "containerProperties.resourceRequirements: a MEMORY value in MiB is required "
            "(or the legacy containerProperties.memory)"
        )
    vcpu = _number(merged["VCPU"], "resourceRequirements VCPU")
    if not 0.25 <= vcpu <= 10_000 or vcpu * 4 != int(vcpu * 4):
        raise ClientError(
            f"resourceRequirements VCPU: {merged['VCPU']!r:.40} is not allowed; use 0.25 to "
            "10000 in steps of 0.25"
        )
    if fargate and vcpu not in FARGATE_VCPUS:
        raise ClientError(
            f"resourceRequirements VCPU: {vcpu:g} is not a Fargate size; use one of "
            f"{', '.join(f'{v:g}' for v in FARGATE_VCPUS)}"
        )
    memory = _whole(merged["MEMORY"], "resourceRequirements MEMORY", "of MiB, 4 or more", 4)
    gpus = _whole(merged.get("GPU", "0"), "resourceRequirements GPU", "", 0)
    return Resources(round(vcpu * 1000), memory, gpus)


def _whole(value: Any, field: str, unit: str, low: int) -> int:
    """A whole number given as AWS gives them (a string of digits, or an int)."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not _WHOLE.match(text) or int(text) < low:
        raise ClientError(
            f"{field}: {value!r:.40} is not allowed; use a whole number {unit}".rstrip()
            + (f" (at least {low})" if low and not unit else "")
        )
    return int(text)


def _requirements(container: dict[str, Any], field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if container.get("vcpus") is not None:
        out["VCPU"] = str(container["vcpus"])
    if container.get("memory") is not None:
        out["MEMORY"] = str(container["memory"])
    for i, req in enumerate(container.get("resourceRequirements") or []):
        kind = req.get("type")
        if kind not in ("VCPU", "MEMORY", "GPU"):
            raise ClientError(
                f"{field}.resourceRequirements[{i}].type: {kind!r} is not one of GPU, VCPU, MEMORY"
            )
        out[kind] = req.get("value")
    return out


def _number(value: Any, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ClientError(f"{field}: {value!r:.40} is not a number") from None
    if not math.isfinite(number):
        raise ClientError(f"{field}: {value!r:.40} is not a finite number")
    return number


def spot_granted(ce: dict[str, Any], capacity: Resources) -> Resources:
    """What spot grants of ``capacity`` in compute environment ``ce`` (see SPOT_CAPACITY_TAG)."""
    kind = (ce.get("computeResources") or {}).get("type", "")
    granted = (ce.get("tags") or {}).get(SPOT_CAPACITY_TAG)
    if granted is None or not kind.endswith("SPOT"):
        return capacity
    return Resources(
        min(capacity.vcpu_milli, int(granted) * 1000), capacity.memory_mib, capacity.gpus
    )


def environment_capacity(ce: dict[str, Any], host_memory_mib: int, host_cpus: int) -> Resources:
    """What a compute environment can run at once on this machine."""
    tags = ce.get("tags") or {}
    if ce.get("type") == "UNMANAGED":
        vcpus = ce.get("unmanagedvCpus") or host_cpus
    else:
        vcpus = (ce.get("computeResources") or {}).get("maxvCpus", 0)
    memory = int(tags.get(MEMORY_TAG, host_memory_mib))
    gpus = int(tags.get(GPU_TAG, 0))
    return Resources(int(vcpus) * 1000, memory, gpus)
