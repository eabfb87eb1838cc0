"""This interpreter as a worker must match it: its Python, executable and package versions.

Pure reading of ``sys`` and ``importlib.metadata``; used by the client (what it has), by
the local service (what its workers have: they run its interpreter) and by the worker
(which checks again when it starts).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterator, Mapping
from typing import Any


def installed(module: str) -> bool:
    """Whether ``module`` is importable here from a file (not built in, not frozen)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin not in (None, "built-in", "frozen")


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()  # scans every installed package: once


def _candidates(module: str, dists: Mapping[str, str] | None) -> Iterator[str]:
    """The distributions that may hold ``module``: the one named before, else the one of the
    same name (most are), and only then those a scan of every installed package finds."""
    if dists and module in dists:
        yield dists[module]
        return
    yield module
    yield from (d for d in _distributions().get(module, []) if d != module)


def describe(modules: list[str], dists: Mapping[str, str] | None = None) -> dict[str, Any]:
    """This interpreter's Python version and the versions of ``modules`` (None: missing).

    ``dists`` (module -> distribution, as an earlier describe() found them) spares the scan
    of every installed package that finding them costs.
    """
    versions: dict[str, str | None] = {}
    found: dict[str, str] = {}
    for name in modules:
        version = None
        for dist in _candidates(name, dists):
            try:
                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
            found[name] = dist
            break
        if version is None and installed(name):
            version = "unknown"
        versions[name] = version
    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "executable": sys.executable,
        "versions": versions,
        "dists": found,
    }


def differences(local: dict[str, Any], remote: dict[str, Any]) -> list[str]:
    """Readable lines for each way the worker differs from here (empty: it matches)."""
    out = []
    if local["python"].split(".")[:2] != remote["python"].split(".")[:2]:
        out.append(
            f"Python {remote['python']} on the worker, {local['python']} here: "
            "pickled functions only load in the same minor version"
        )
    for name, version in sorted(local["versions"].items()):
        theirs = remote["versions"].get(name)
        if theirs is None:
            out.append(f"module {name} is not installed on the worker (here: {version})")
        elif theirs != version:
            out.append(f"module {name} is {theirs} on the worker, {version} here")
    return out


def mismatch_message(problems: list[str]) -> str:
    return (
        "the worker's environment differs from this one:\n  - "
        + "\n  - ".join(problems)
        + "\nInstall the same versions on the worker (or here), or rebuild the worker image."
    )
