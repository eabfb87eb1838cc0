"""Each input's output files: inside a mapped function, ``batch.output_dir()`` is a folder
of the input's own; what it holds when the input ends (a value or not) goes to the store,
``runs/<run>/files/<input>/<name>``, and ``job.files(i)`` lists and fetches it.
``batch.open(uri)`` reads an input given as ``s3://bucket/key`` (or a path) as a stream."""

from __future__ import annotations

import html
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from batchbook.functions.checkpoints import bound_input
from batchbook.functions.objects import ObjectStore, open_uri
from batchbook.functions.payload import run_key
from batchbook.wording import size

_ROOT: list[Path | None] = [None]  # the worker's folder of output folders, made on first use


def output_dir() -> Path:
    """The running input's own folder for files to keep (made empty, on this worker's disk)."""
    _, _, index = bound_input("output_dir")
    root = _ROOT[0]
    if root is None:
        root = _ROOT[0] = Path(tempfile.mkdtemp(prefix="batchbook-output-"))
    folder = root / str(index)
    folder.mkdir(exist_ok=True)
    return folder


def open(uri: str) -> BinaryIO:
    """``s3://bucket/key`` (an input's URI) as a binary stream read as it goes, or a file."""
    return open_uri(uri)


def files_key(run_id: str, index: int, name: str = "") -> str:
    return run_key(run_id, f"files/{index}/{name}")


def keep_outputs(store: ObjectStore, run_id: str, index: int) -> None:
    """After input ``index`` ended: store what its output folder holds, and remove it."""
    root = _ROOT[0]
    folder = root / str(index) if root is not None else None
    if folder is None or not folder.is_dir():
        return
    try:
        store.delete(files_key(run_id, index))  # an earlier attempt's files: this one's instead
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                store.put_file(files_key(run_id, index, path.relative_to(folder).as_posix()), path)
    except Exception as e:  # the input's value is kept all the same; the log says what was lost
        print(
            f"batchbook worker: input {index}'s output files could not all be stored: "
            f"{type(e).__name__}: {e}",
            file=sys.stderr,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def drop_outputs() -> None:
    """At the end of a chunk: the worker's folder of output folders goes (on the host of the
    local engine, /tmp would keep them)."""
    if _ROOT[0] is not None:
        shutil.rmtree(_ROOT[0], ignore_errors=True)
        _ROOT[0] = None


class InputFiles:
    """The files an input kept (``job.files(i)``): names and sizes, each one's bytes, and
    ``save(folder)`` to write them all."""

    def __init__(self, store: ObjectStore, run_id: str, index: int):
        self.store, self.index = store, index
        self._prefix = files_key(run_id, index)
        self.sizes = {key[len(self._prefix) :]: n for key, n in store.list(self._prefix)}

    @property
    def names(self) -> list[str]:
        return sorted(self.sizes)

    def read(self, name: str) -> bytes:
        if name not in self.sizes:
            raise KeyError(f"input {self.index} kept no file {name!r}; it kept {self.names}")
        return bytes(self.store.get(self._prefix + name))

    def save(self, folder: str | Path) -> list[Path]:
        """Write every file under ``folder`` (made if missing); the paths written."""
        out = []
        for name in self.names:
            target = Path(folder, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read(name))
            out.append(target)
        return out

    def __len__(self) -> int:
        return len(self.sizes)

    def __repr__(self) -> str:
        listed = ", ".join(f"{n} ({size(self.sizes[n])})" for n in self.names) or "none"
        return f"<files of input {self.index}: {listed}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(n)}</td><td>{size(self.sizes[n])}</td></tr>" for n in self.names
        )
        return f"<div><b>Files of input {self.index}</b><table>{rows}</table></div>"

    def __iter__(self) -> Any:
        return iter(self.names)
