"""Pre-flight: will the worker run the same Python and the same packages as this process?

The client lists the top-level modules a function uses (through its globals and
closures, recursively); a probe job on the worker (``python -m
batchbook.functions.environment <store url> <key> <modules...>``) writes what it
has; :func:`differences` compares the two. A pickled function only loads and
behaves the same where the Python minor version, cloudpickle and those modules match.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import sys
import types
from collections.abc import Mapping
from typing import Any

ALWAYS = ("cloudpickle",)


def referenced_modules(func: Any) -> set[types.ModuleType]:
    """The modules ``func`` refers to through its globals and closures, recursively."""
    found: set[types.ModuleType] = set()
    seen: set[int] = set()
    todo = [func]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.ModuleType):
            found.add(obj)
            continue
        module = sys.modules.get(getattr(obj, "__module__", None) or "")
        if module is not None:
            found.add(module)
        code = getattr(obj, "__code__", None)
        if code is None:
            continue
        globals_ = getattr(obj, "__globals__", {})
        todo.extend(globals_[n] for n in _names(code) if n in globals_)
        todo.extend(c.cell_contents for c in getattr(obj, "__closure__", None) or () if _filled(c))
    return found


def modules_used(func: Any) -> set[str]:
    """Top-level names of the installed packages ``func`` uses (what the worker must match)."""
    names = {m.__name__.partition(".")[0] for m in referenced_modules(func)} | set(ALWAYS)
    return {
        m
        for m in names
        if m not in sys.stdlib_module_names
        and m not in ("__main__", "batchbook")
        and _installed(m)
        and not is_local(sys.modules.get(m))
    }


def is_local(module: types.ModuleType | None) -> bool:
    """A module of the user's own (the notebook's folder, a script's), not an installed package."""
    if module is None:
        return False
    name = module.__name__
    if name in ("__main__", "builtins") or name in sys.builtin_module_names:
        return False
    path = getattr(module, "__file__", None) or ""
    installed = (
        "site-packages" in path
        or "dist-packages" in path
        or path.startswith((sys.prefix, sys.base_prefix))
    )
    return bool(path) and not installed and not name.startswith("batchbook")


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _installed(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin not in (None, "built-in", "frozen")


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()  # scans every installed package: once


def describe(modules: list[str]) -> dict[str, Any]:
    """This interpreter's Python version and the versions of ``modules`` (None: missing)."""
    dists = _distributions()
    versions: dict[str, str | None] = {}
    for name in modules:
        version = None
        for dist in dists.get(name, [name]):
            try:
                version = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        if version is None and _installed(name):
            version = "unknown"
        versions[name] = version
    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "executable": sys.executable,
        "versions": versions,
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


def main(argv: list[str] | None = None) -> int:
    from batchbook.functions.objects import open_store

    store_url, key, *modules = sys.argv[1:] if argv is None else argv
    open_store(store_url).put(key, json.dumps(describe(modules)).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
