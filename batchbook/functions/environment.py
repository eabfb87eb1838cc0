"""Pre-flight: which installed packages does a function use (so the worker must match)?

The client lists the top-level modules a function uses (through its globals and
closures, recursively) and compares this interpreter with the worker's
(:mod:`batchbook.interpreter`) before anything is submitted: a pickled function only
loads and behaves the same where the Python minor version, cloudpickle and those
modules match. The worker checks again when it starts.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from batchbook.interpreter import installed

ALWAYS = ("cloudpickle",)  # every pickled function needs the same cloudpickle to load


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
        and installed(m)
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
