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

from batchbook.functions.pickling import register_sources, to_bytes


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

    def reuse_identity(self) -> bytes:
        """What the cell is for ``reuse``: its text and values, not its execution count."""
        return pickle.dumps(
            (self.source, sorted(self.values.items()), self.assigns, sorted(self.sources.items()))
        )


def run_cell(code: CellCode, index: int, item: Any = None) -> dict[str, Any]:
    """Run the cell with BATCH_INDEX = ``index`` and BATCH_ITEM = ``item``; the values of the
    names it assigned (modules left out: imports stay here; a value that cannot be pickled
    is left out and named in the job's output)."""
    __tracebackhide__ = True  # a remote traceback starts at the cell
    register_sources({**code.sources, code.filename: code.source})
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    namespace.update((name, pickle.loads(data)) for name, data in code.values.items())
    namespace.update(BATCH_INDEX=index, BATCH_ITEM=item)
    exec(compile(code.source, code.filename, "exec"), namespace)
    out: dict[str, Any] = {}
    kept_back = []
    for name in code.assigns:
        value = namespace.get(name, _MISSING)
        if value is _MISSING or isinstance(value, types.ModuleType):
            continue
        try:
            to_bytes(value)  # one that cannot come back must not take the others with it
        except Exception as e:
            kept_back.append(f"{name} ({type(value).__name__}: {type(e).__name__}: {e})")
            continue
        out[name] = value
    if kept_back:
        print(f"[batch] not brought back, as they cannot be pickled: {'; '.join(kept_back)}")
    return out


_MISSING = object()
