"""A notebook cell as a job's function: its source, the notebook values it reads (each
pickled once, on the notebook's side) and the names to bring back.

This module runs on the worker, so it imports nothing of IPython: the magic builds a
:class:`CellCode` and maps ``functools.partial(run_cell, code)`` over the children.
"""

from __future__ import annotations

import builtins
import pickle
import types
from dataclasses import dataclass, field
from typing import Any

from batchbook.functions.pickling import register_sources


@dataclass(frozen=True)
class CellCode:
    """A cell to run: its body (as many blank lines before it as the cell has lines before
    the body, so line numbers are the cell's), the name tracebacks give it, the pickled
    notebook values it reads, the names it assigns, and the sources of the notebook code
    those values hold (for readable tracebacks)."""

    source: str
    filename: str
    values: dict[str, bytes]
    assigns: tuple[str, ...]
    sources: dict[str, str] = field(default_factory=dict)


def run_cell(code: CellCode, index: int, item: Any = None) -> dict[str, Any]:
    """Run the cell with BATCH_INDEX = ``index`` and BATCH_ITEM = ``item``; the values of the
    names it assigned (modules left out: imports stay here)."""
    __tracebackhide__ = True  # a remote traceback starts at the cell
    register_sources({**code.sources, code.filename: code.source})
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    namespace.update((name, pickle.loads(data)) for name, data in code.values.items())
    namespace.update(BATCH_INDEX=index, BATCH_ITEM=item)
    exec(compile(code.source, code.filename, "exec"), namespace)
    return {
        name: namespace[name]
        for name in code.assigns
        if name in namespace and not isinstance(namespace[name], types.ModuleType)
    }
