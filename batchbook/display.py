"""Live views of handles in a notebook, without a layer importing one above it.

The function layer's handles (a MapJob, a Job) ask here for a live view of themselves; the
package root registers, by name, the notebook layer's builder of each. A view is built
only inside a Jupyter kernel (a terminal IPython or a plain script gets the text forms),
and a missing widget library falls back to them too.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

_BUILDERS: dict[str, str] = {}  # kind of handle -> "module:callable" that builds its view


def register(kind: str, builder: str) -> None:
    """``builder`` ("module:callable", called with the handle) makes ``kind``'s live view."""
    _BUILDERS[kind] = builder


def in_kernel() -> bool:
    """True inside a Jupyter kernel, where widgets can show."""
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def live_view(kind: str, handle: Any) -> Any | None:
    """A live view of ``handle`` (None outside a kernel, or when none can be built)."""
    target = _BUILDERS.get(kind)
    if target is None or not in_kernel():
        return None
    module, _, name = target.partition(":")
    try:
        builder = getattr(importlib.import_module(module), name)
    except ImportError:  # no widget library: the text forms will do
        return None
    return builder(handle)


_shown: dict[int, int] = {}  # id of a handle -> the cell (execution count) that shows its view


def _cell() -> int:
    from IPython import get_ipython

    shell = get_ipython()
    return int(getattr(shell, "execution_count", 0) or 0)


def show_live(kind: str, handle: Any) -> Any | None:
    """Display a live view of ``handle`` in the cell now; the view (None: none shown)."""
    view = live_view(kind, handle)
    if view is not None:
        from IPython.display import display

        display(view)
        _shown[id(handle)] = _cell()
    return view


def bundle(kind: str, handle: Any, text: str, page: str, **kwargs: Any) -> dict[str, Any]:
    """The display bundle: a live view's (in a kernel) with ``text`` and ``page`` as its
    text/plain and text/html, so saved notebooks and terminals still read. A cell that
    already shows the handle's view (``job.wait()`` as its last line) gets the text only."""
    shown_here = in_kernel() and _shown.get(id(handle)) == _cell()
    view = None if shown_here else live_view(kind, handle)
    return with_text(view, text, page, **kwargs)


def with_text(shown: Any, text: str, page: str, **kwargs: Any) -> dict[str, Any]:
    """``shown``'s display bundle (a widget's, or none) with ``text`` and ``page`` as its
    text/plain and text/html."""
    out = dict(shown._repr_mimebundle_(**kwargs) or {}) if shown is not None else {}
    out.update({"text/plain": text, "text/html": page})
    return out


class Lines:
    """A report shown as its ``lines()``: the first a heading, the rest its points, as text
    (one per line) and as HTML (a bold heading over a list)."""

    def lines(self) -> list[str]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        import html

        head, *rest = self.lines()
        items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in rest)
        return f"<div><b>{html.escape(head)}</b><ul>{items}</ul></div>"
