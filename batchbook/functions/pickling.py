"""Pickling code by value so that it stays readable on the worker.

cloudpickle sends notebook functions and the user's local modules by value. Two
things would be lost on the way: the file name of their code (cloudpickle 3.1.3 and
later write ``<dynamic-code>``) and the source itself (a notebook cell or a local
file never exists on an AWS worker; locally it may have been edited since). So:

- :class:`Pickler` is cloudpickle's, except that code objects travel with their
  ``co_filename`` (marshalled, as the interpreter stores them) and every file name
  they come from is collected;
- :func:`sources` reads the text of those files here (``linecache``: IPython registers
  each cell there, files are read from disk) and the payload carries it;
- :func:`register_sources` puts it into the worker's ``linecache`` under the original
  names, so a remote traceback shows the cell or file and each source line as submitted.
"""

from __future__ import annotations

import io
import linecache
import marshal
import types
from collections import ChainMap
from typing import Any

import cloudpickle

from batchbook.errors import SerializationError

PROTOCOL = 5


def load_code(data: bytes) -> types.CodeType:
    """A code object from its marshal form (what :class:`Pickler` writes for one)."""
    return marshal.loads(data)


class Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler, but code pickled by value keeps its file name; ``filenames``
    collects the names of every file such code comes from."""

    def __init__(
        self,
        file: Any,
        protocol: int = PROTOCOL,
        buffer_callback: Any = None,
        filenames: set[str] | None = None,
    ):
        self.filenames = set() if filenames is None else filenames
        # looked up by the C pickler in __init__: set before it
        self.dispatch_table = ChainMap({types.CodeType: self._reduce_code}, super().dispatch_table)
        super().__init__(file, protocol=protocol, buffer_callback=buffer_callback)

    def _reduce_code(self, code: types.CodeType) -> tuple[Any, tuple[bytes]]:
        todo = [code]
        while todo:  # nested functions, lambdas and classes are constants of their code
            c = todo.pop()
            self.filenames.add(c.co_filename)
            todo.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        return load_code, (marshal.dumps(code),)


def to_bytes(obj: Any, filenames: set[str] | None = None, buffer_callback: Any = None) -> bytes:
    """``cloudpickle.dumps`` with :class:`Pickler`."""
    with io.BytesIO() as f:
        Pickler(f, buffer_callback=buffer_callback, filenames=filenames).dump(obj)
        return f.getvalue()


def dumps(obj: Any, what: str, filenames: set[str] | None = None) -> bytes:
    """Pickle ``obj`` by value where needed, or a SerializationError that names ``what``."""
    try:
        return to_bytes(obj, filenames)
    except Exception as e:
        raise SerializationError(
            f"{what} cannot be pickled{culprit(obj)}: {type(e).__name__}: {e}. Objects such as "
            "open files, sockets, locks and database connections cannot be sent to a worker; "
            "create them inside the function instead."
        ) from e


def pickle_function(func: Any, filenames: set[str]) -> bytes:
    """The function by value, with the local modules it uses (notebook helpers, local files);
    the files its code comes from are added to ``filenames``."""
    from batchbook.functions.environment import is_local, referenced_modules

    if not callable(func):
        raise SerializationError(f"func: {func!r:.80} is not callable")
    local = [m for m in referenced_modules(func) if is_local(m)]
    for module in local:
        cloudpickle.register_pickle_by_value(module)
    try:
        return dumps(func, f"function {getattr(func, '__qualname__', func)!r}", filenames)
    finally:
        for module in local:
            cloudpickle.unregister_pickle_by_value(module)


def sources(filenames: set[str]) -> dict[str, str]:
    """The text of each of these files as this process sees it (cells included)."""
    out = {}
    for name in sorted(filenames):
        lines = linecache.getlines(name)
        if lines:
            out[name] = "".join(lines)
    return out


def register_sources(texts: dict[str, str]) -> None:
    """Tracebacks in this process show these texts for these file names (no mtime: kept)."""
    for name, text in texts.items():
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)


def culprit(value: Any, depth: int = 4) -> str:
    """`` (at <path>: a <type>)`` for the first part of ``value`` that cannot be pickled, or ""."""
    path = _unpicklable_part(value, "", depth)
    if not path:
        return ""
    where, kind = path
    return f" (at {where}: a {kind})" if where else f" (a {kind})"


def _unpicklable_part(value: Any, where: str, depth: int) -> tuple[str, str] | None:
    if _picklable(value):
        return None
    if depth > 0:
        if isinstance(value, dict):
            items: Any = ((f"[{k!r:.40}]", v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            items = ((f"[{i}]", v) for i, v in enumerate(value))
        elif hasattr(value, "__dict__") and not isinstance(value, type | types.ModuleType):
            items = ((f".{k}", v) for k, v in vars(value).items())
        else:
            items = ()
        for key, item in items:
            found = _unpicklable_part(item, where + key, depth - 1)
            if found:
                return found
    return where, type(value).__qualname__


def _picklable(value: Any) -> bool:
    try:
        to_bytes(value)
    except Exception:
        return False
    return True
