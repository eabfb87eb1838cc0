"""``batchbook aws image``: a Dockerfile that reproduces this Python for the workers (the
same minor version, the installed versions of the packages maps need, batchbook itself),
and a manifest of those versions in the store, which ``doctor`` and the pre-flight check
compare with the notebook's. The commands that build and push it to ECR are printed, and
run with ``--push``."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Any

from batchbook.interpreter import describe, differences
from batchbook.version import __version__

MANIFEST = "image/manifest.json"  # under the store's prefix
BASE_PACKAGES = ("cloudpickle", "pandas", "numpy")  # what every map's worker loads


def manifest(packages: list[str]) -> dict[str, Any]:
    """This interpreter's Python and the versions of ``packages`` (and batchbook's own)."""
    found = describe([*BASE_PACKAGES, *packages])
    return {**found, "batchbook": __version__, "platform": platform.machine()}


def dockerfile(spec: dict[str, Any]) -> str:
    """The Dockerfile for ``spec`` (a manifest): python's slim image of its minor version,
    the packages pinned to its versions."""
    major, minor = spec["python"].split(".")[:2]
    dists = spec.get("dists", {})
    pins = [
        f"{dists.get(name, name)}=={version}" if version != "unknown" else dists.get(name, name)
        for name, version in sorted(spec["versions"].items())
        if version
    ]
    pins.append(f"batchbook=={spec['batchbook']}")
    lines = [
        f"FROM python:{major}.{minor}-slim",
        "ENV PYTHONUNBUFFERED=1",
        "RUN pip install --no-cache-dir " + " ".join(pins),
        "ENTRYPOINT []",
    ]
    return "\n".join(lines) + "\n"


def manifest_differences(stored: dict[str, Any]) -> list[str]:
    """How this interpreter differs from the image's manifest (empty: it matches)."""
    here = describe(list(stored.get("versions", {})), stored.get("dists"))
    return differences(here, stored)


def build_commands(account: str, region: str, repository: str, folder: Path) -> list[str]:
    registry = f"{account}.dkr.ecr.{region}.amazonaws.com"
    uri = f"{registry}/{repository}:{__version__}"
    return [
        f"aws ecr create-repository --repository-name {repository} --region {region} || true",
        f"aws ecr get-login-password --region {region} | docker login --username AWS "
        f"--password-stdin {registry}",
        f"docker build -t {uri} {folder}",
        f"docker push {uri}",
    ]


def docker_available() -> bool:
    return shutil.which("docker") is not None


def write(folder: Path, packages: list[str]) -> tuple[Path, dict[str, Any]]:
    """The Dockerfile in ``folder`` and the manifest it pins."""
    spec = manifest(packages)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Dockerfile"
    path.write_text(dockerfile(spec))
    (folder / "manifest.json").write_text(json.dumps(spec, indent=1) + "\n")
    return path, spec
