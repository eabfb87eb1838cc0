"""The object store that carries functions, inputs and results between client and workers.

Keys are ``/``-separated paths. The local store is a folder (``file://``); an
``s3://`` store comes with the AWS backend. Whole objects are written atomically
(temporary file, then rename); result records are appended one frame at a time.
"""

from __future__ import annotations

import mmap
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from batchbook.errors import ClientError

MAP_AT_LEAST = 1 << 20  # reads this big map the file instead of copying it


class LocalStore:
    """An object store in a local folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        if not key or any(part in ("", ".", "..") for part in key.split("/")):
            raise ClientError(f"object key {key!r}: not a valid key")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def create(self, key: str, parts: list[bytes]) -> None:
        """Write a new object that nobody reads before it is complete (no temporary file)."""
        self._write(key, parts, os.O_CREAT | os.O_EXCL)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def get_range(self, key: str, start: int, end: int) -> bytes:
        with open(self._path(key), "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def keys(self, prefix: str) -> list[str]:
        """Keys under the folder ``prefix`` (one level), sorted."""
        folder = self._path(prefix.rstrip("/"))
        try:
            names = sorted(n for n in os.listdir(folder) if not n.startswith("."))
        except FileNotFoundError:
            return []
        return [f"{prefix.rstrip('/')}/{n}" for n in names]

    def remove(self, prefix: str) -> None:
        """Delete every object under the folder ``prefix``."""
        shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)

    def read_from(self, key: str, offset: int) -> bytes | memoryview:
        """The object's bytes from ``offset`` on (empty if there are none yet).

        Big reads are a read-only memory map of the file, not a copy of it.
        """
        try:
            with open(self._path(key), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size - offset < MAP_AT_LEAST:
                    f.seek(offset)
                    return f.read()
                start = offset - offset % mmap.ALLOCATIONGRANULARITY
                mapped = mmap.mmap(f.fileno(), size - start, access=mmap.ACCESS_READ, offset=start)
                return memoryview(mapped)[offset - start :]
        except FileNotFoundError:
            return b""

    def append(self, key: str, parts: list[bytes]) -> None:
        """Append whole frames, written together to a file opened for appending."""
        self._write(key, parts, os.O_APPEND | os.O_CREAT)

    def _write(self, key: str, parts: list[Any], flags: int) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | flags, 0o644)
        try:
            view = [memoryview(p) for p in parts]
            while view:  # writev may write less than asked: go on from where it stopped
                written = os.writev(fd, view[:1024])
                while view and written >= len(view[0]):
                    written -= len(view.pop(0))
                if written:
                    view[0] = view[0][written:]
        finally:
            os.close(fd)


def open_store(url: str) -> LocalStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(unquote(parsed.path))
    raise ClientError(f"store: {url!r} is not supported; use a file:// folder")
