"""EC2 instance types of the common Batch families: vCPUs, memory, GPUs, architecture, as AWS
documents them, and AWS Batch's ``instanceTypes`` keywords expanded as AWS documents them.

Beside the Batch vocabulary, so the engine can check a compute environment's
``instanceTypes`` by name and the cost layer can price what a job would run on. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from batchbook.errors import ClientError


@dataclass(frozen=True)
class InstanceType:
    name: str  # "m6i.large"
    vcpus: int
    memory_mib: int
    gpus: int
    arch: str  # "x86_64" or "arm64"

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


# Sizes -> vCPUs, for families whose memory is a fixed number of GiB per vCPU.
_SIZES: Final = {
    "medium": 1,
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "9xlarge": 36,
    "12xlarge": 48,
    "16xlarge": 64,
    "18xlarge": 72,
    "24xlarge": 96,
    "32xlarge": 128,
    "48xlarge": 192,
}
# The sizes each generation comes in (a generation's m, c and r families share them)
_UP_TO_4X: Final = ("large", "xlarge", "2xlarge", "4xlarge")
_M5_R5: Final = (*_UP_TO_4X, "8xlarge", "12xlarge", "16xlarge", "24xlarge")
_C5: Final = (*_UP_TO_4X, "9xlarge", "12xlarge", "18xlarge", "24xlarge")
_SIXTH: Final = (*_M5_R5, "32xlarge")
_C7I: Final = (*_M5_R5, "48xlarge")
_GRAVITON: Final = ("medium", *_UP_TO_4X, "8xlarge", "12xlarge", "16xlarge")
# family -> (GiB per vCPU, architecture, its sizes)
_FAMILIES: Final = {
    "m4": (4, "x86_64", (*_UP_TO_4X, "16xlarge")),
    "c4": (1.875, "x86_64", _UP_TO_4X),
    "r4": (7.625, "x86_64", (*_UP_TO_4X, "8xlarge", "16xlarge")),
    "m5": (4, "x86_64", _M5_R5),
    "c5": (2, "x86_64", _C5),
    "r5": (8, "x86_64", _M5_R5),
    "m6i": (4, "x86_64", _SIXTH),
    "c6i": (2, "x86_64", _SIXTH),
    "r6i": (8, "x86_64", _SIXTH),
    "c7i": (2, "x86_64", _C7I),
    "m6g": (4, "arm64", _GRAVITON),
    "c6g": (2, "arm64", _GRAVITON),
    "r6g": (8, "arm64", _GRAVITON),
    "c7g": (2, "arm64", _GRAVITON),
}
# GPU instances: name -> (vCPUs, GiB, GPUs)
_GPU: Final = {
    "g4dn.xlarge": (4, 16, 1),
    "g4dn.2xlarge": (8, 32, 1),
    "g4dn.4xlarge": (16, 64, 1),
    "g4dn.8xlarge": (32, 128, 1),
    "g4dn.12xlarge": (48, 192, 4),
    "g4dn.16xlarge": (64, 256, 1),
    "g5.xlarge": (4, 16, 1),
    "g5.2xlarge": (8, 32, 1),
    "g5.4xlarge": (16, 64, 1),
    "g5.8xlarge": (32, 128, 1),
    "g5.12xlarge": (48, 192, 4),
    "g5.16xlarge": (64, 256, 1),
    "g5.24xlarge": (96, 384, 4),
    "g5.48xlarge": (192, 768, 8),
    "p3.2xlarge": (8, 61, 1),
    "p3.8xlarge": (32, 244, 4),
    "p3.16xlarge": (64, 488, 8),
    "p4d.24xlarge": (96, 1152, 8),
}

TYPES: Final[dict[str, InstanceType]] = {
    **{
        f"{family}.{size}": InstanceType(
            f"{family}.{size}", _SIZES[size], int(_SIZES[size] * per_vcpu * 1024), 0, arch
        )
        for family, (per_vcpu, arch, sizes) in _FAMILIES.items()
        for size in sizes
    },
    **{
        name: InstanceType(name, vcpus, gib * 1024, gpus, "x86_64")
        for name, (vcpus, gib, gpus) in _GPU.items()
    },
}
FAMILIES: Final = frozenset(t.family for t in TYPES.values())

# AWS Batch's keywords (its documentation, as of 2025-11-01: `optimal` is default_x86_64)
KEYWORDS: Final = {
    "optimal": ("m6i", "c6i", "r6i", "c7i"),
    "default_x86_64": ("m6i", "c6i", "r6i", "c7i"),
    "default_arm64": ("m6g", "c6g", "r6g", "c7g"),
}


def expand(instance_types: list[str], field: str = "instanceTypes") -> list[InstanceType]:
    """The instance types that ``instance_types`` (types, families, keywords) name, smallest
    first; ClientError naming an entry that is none of those."""
    found: dict[str, InstanceType] = {}
    for i, entry in enumerate(instance_types):
        families = KEYWORDS.get(entry) or ((entry,) if entry in FAMILIES else ())
        if entry in TYPES:
            found[entry] = TYPES[entry]
        elif families:
            found.update((t.name, t) for t in TYPES.values() if t.family in families)
        else:
            raise ClientError(
                f"{field}[{i}]: {entry!r:.40} is not an instance type, family or keyword the "
                f"local engine knows; use one of {', '.join(KEYWORDS)}, a family such as m6i, "
                "or a type such as m6i.large"
            )
    return sorted(found.values(), key=lambda t: (t.vcpus, t.memory_mib, t.name))
