"""The object store that carries functions, inputs and results between client and workers.

:class:`ObjectStore` is the contract, small enough for a folder and for S3 alike: put
an object whole, get it (or a byte range of it), list the objects under a prefix with
their sizes (or just the "folders" under it), delete everything under a prefix. No append and no exclusive create: a
run's results are one object per flush of a chunk attempt, its ledger entry one object.
A missing object is a ``FileNotFoundError`` from every implementation.

- :class:`FolderStore` (``file://``): a local folder; whole objects appear atomically
  (temporary file, then rename), big reads are memory maps.
- :class:`S3Store` (``s3://bucket/prefix``): boto3, with multipart uploads and concurrent
  range reads for big objects (boto3's transfer manager); the endpoint comes from
  ``AWS_ENDPOINT_URL_S3`` when set, the credentials from the environment.
"""

from __future__ import annotations

import builtins
import io
import mmap
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import unquote, urlparse

from batchbook.errors import ClientError
from batchbook.home import make_private_dirs

MAP_AT_LEAST = 1 << 20  # reads this big map the file instead of copying it
Data = bytes | memoryview  # what get returns: bytes, or a memory map of a big object


class ObjectStore(Protocol):
    """Where a run's function, inputs, results and ledger entry live (see the module doc)."""

    @property
    def url(self) -> str: ...

    def put(self, key: str, data: Data | list[Any]) -> None:
        """Write the object ``key`` whole (``data`` may be a list of parts, written in order)."""

    def get(self, key: str) -> Data:
        """The object's bytes (FileNotFoundError if there is none)."""

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` as ``key`` (S3: a managed, multipart transfer)."""

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of the object."""

    def list(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object whose key starts with ``prefix``, sorted by key."""

    def folders(self, prefix: str) -> builtins.list[str]:
        """The next path segment of every key under ``prefix`` (which ends in "/") that has
        one more "/" after it, each once, sorted: S3's common prefixes, a folder's folders."""

    def delete(self, prefix: str) -> None:
        """Delete every object whose key starts with ``prefix``."""

    def worker_environment(self) -> dict[str, str]:
        """What a worker's environment needs to reach this store (beyond its credentials)."""


def check_key(key: str) -> str:
    if not key or any(part in ("", ".", "..") for part in key.rstrip("/").split("/")):
        raise ClientError(f"object key {key!r}: not a valid key")
    return key


class FolderStore:
    """An object store in a local folder: a key is a path under it."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        make_private_dirs(self.root)

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: Data | list[Any]) -> None:
        path = self._path(key)
        if not path.parent.is_dir():
            make_private_dirs(path.parent)  # inputs and results: yours only
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = [memoryview(p) for p in (data if isinstance(data, list) else [data])]
            while view:  # writev may write less than asked: go on from where it stopped
                written = os.writev(fd, view[:1024])
                while view and written >= len(view[0]):
                    written -= len(view.pop(0))
                if written:
                    view[0] = view[0][written:]
        finally:
            os.close(fd)
        tmp.replace(path)

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        if not target.parent.is_dir():
            make_private_dirs(target.parent)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(target)

    def get(self, key: str) -> Data:
        """Big objects come back as a read-only memory map of the file, not a copy."""
        with open(self._path(key), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < MAP_AT_LEAST:
                return f.read()
            return memoryview(mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ))

    def get_range(self, key: str, start: int, end: int) -> bytes:
        with open(self._path(key), "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def list(self, prefix: str) -> list[tuple[str, int]]:
        folder = prefix.rpartition("/")[0]
        base = self._path(folder) if folder else self.root
        return sorted(self._walk(base, f"{folder}/" if folder else "", prefix))

    def folders(self, prefix: str) -> builtins.list[str]:
        try:
            entries = list(os.scandir(self._path(prefix.rstrip("/"))))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())

    def _walk(self, folder: Path, key_prefix: str, prefix: str) -> Iterator[tuple[str, int]]:
        """The objects under ``folder`` whose keys start with ``prefix``; a folder whose keys
        cannot is not entered (``runs/x/run.json`` reads no results folder)."""
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # a write in progress
            key = key_prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                inner = key + "/"
                if inner.startswith(prefix) or prefix.startswith(inner):
                    yield from self._walk(Path(entry.path), inner, prefix)
            elif key.startswith(prefix):
                try:
                    yield key, entry.stat().st_size
                except FileNotFoundError:
                    continue

    def worker_environment(self) -> dict[str, str]:
        return {}  # the worker sees the same folder

    def delete(self, prefix: str) -> None:
        if prefix.endswith("/"):  # a whole folder: its files and the folders they made
            shutil.rmtree(self._path(prefix), ignore_errors=True)
            return
        for key, _ in self.list(prefix):
            self._path(key).unlink(missing_ok=True)


class S3Store:
    """An object store under ``s3://bucket/prefix``."""

    def __init__(self, bucket: str, prefix: str = "", profile: str | None = None):
        import boto3
        from boto3.s3.transfer import TransferConfig

        self.bucket, self.prefix = bucket, prefix.strip("/")
        # boto3 reads AWS_ENDPOINT_URL_S3 itself; kept, so a job carries it to its worker
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or None
        session = boto3.Session(profile_name=profile)
        self.client = session.client("s3", endpoint_url=self.endpoint)
        # multipart above 8 MiB, 8 parts at once either way
        self.transfer = TransferConfig(multipart_threshold=8 << 20, max_concurrency=8)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def worker_environment(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_S3": self.endpoint} if self.endpoint else {}

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: Data | list[Any]) -> None:
        parts = data if isinstance(data, list) else [data]
        body = b"".join(memoryview(p) for p in parts) if len(parts) != 1 else parts[0]
        self.client.upload_fileobj(
            io.BytesIO(body), self.bucket, self._key(key), Config=self.transfer
        )

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)

    def get(self, key: str) -> Data:
        out = io.BytesIO()
        try:
            self.client.download_fileobj(self.bucket, self._key(key), out, Config=self.transfer)
        except Exception as e:
            raise _missing(e, key) from e
        return out.getvalue()

    def get_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        try:
            resp = self.client.get_object(
                Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{end - 1}"
            )
        except Exception as e:
            raise _missing(e, key) from e
        return bytes(resp["Body"].read())

    def list(self, prefix: str) -> list[tuple[str, int]]:
        full = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full
        ):
            out += [(o["Key"][cut:], o["Size"]) for o in page.get("Contents", [])]
        return sorted(out)

    def folders(self, prefix: str) -> builtins.list[str]:
        full = self._key(prefix.rstrip("/")) + "/"
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, Delimiter="/"
        ):
            out += [p["Prefix"][len(full) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(out)

    def delete(self, prefix: str) -> None:
        keys = [self._key(k) for k, _ in self.list(prefix)]
        for i in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys a call
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
            )


def _missing(e: Exception, key: str) -> Exception:
    code = getattr(e, "response", {}).get("Error", {}).get("Code")
    if code in ("404", "NoSuchKey", "NotFound"):
        return FileNotFoundError(f"{key}: no such object")
    return e


_S3: dict[str | None, Any] = {}  # endpoint -> the S3 client open_uri reads with


def open_uri(uri: str) -> BinaryIO:
    """``s3://bucket/key`` as a stream read as it goes (boto3 finds the endpoint and the
    credentials as for the store), or a local file (``file://`` or a path)."""
    if uri.startswith("s3://"):
        import boto3

        bucket, _, key = uri[5:].partition("/")
        if not bucket or not key:
            raise ClientError(f"uri: {uri!r:.200} is not s3://bucket/key")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or None
        if _S3.get(endpoint) is None:  # one client per worker: each costs milliseconds
            _S3[endpoint] = boto3.client("s3", endpoint_url=endpoint)
        try:
            body = _S3[endpoint].get_object(Bucket=bucket, Key=key)
        except Exception as e:
            raise _missing(e, uri) from e
        return body["Body"]  # type: ignore[no-any-return]
    return open(uri.removeprefix("file://"), "rb")


def open_store(url: str, profile: str | None = None) -> ObjectStore:
    """The store a URL names: ``file:///folder`` or ``s3://bucket/prefix`` (``profile``: the
    AWS profile to reach it with; default: the environment's credentials)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FolderStore(unquote(parsed.path))
    if parsed.scheme == "s3" and parsed.netloc:
        return S3Store(parsed.netloc, parsed.path, profile)
    raise ClientError(
        f"store: {url!r:.80} is not supported; use file:///a/folder or s3://bucket/prefix"
    )
