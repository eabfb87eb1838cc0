"""Per-attempt log streams: one file per stream, one ``<epoch ms>\\t<message>`` line per event.

Readers seek: a :class:`StreamIndex` keeps, for every 64 KiB of a stream, the byte offset,
event number and timestamp of the first event there, so reading events ``n`` to ``n + k``
(or the first event at or after a time) costs one seek and at most 64 KiB more than the
events themselves, however long the stream. It grows with the stream: each use scans only
what was appended since. Events are in time order, as their one writer stamps them.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

SPAN = 64 * 1024  # bytes between two marks
_LONGEST = 512 * 1024  # an event is at most 256 KiB of message plus its stamp


class StreamIndex:
    """Marks every ``SPAN`` bytes of one stream file: (offset, event number, timestamp)."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.numbers: list[int] = []
        self.stamps: list[int] = []
        self.scanned = 0  # bytes of whole events indexed
        self.events = 0  # events in them

    def extend(self, f: BinaryIO) -> None:
        """Index the whole events written since the last call."""
        f.seek(self.scanned)
        while True:
            data = f.read(SPAN)
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) == SPAN:  # one long event: read to its end
                data += f.read(_LONGEST)
                cut = data.rfind(b"\n") + 1
            if cut == 0:  # nothing more, or an event still being written
                return
            self.offsets.append(self.scanned)
            self.numbers.append(self.events)
            self.stamps.append(int(data[: data.index(b"\t")]))
            self.events += data.count(b"\n", 0, cut)
            self.scanned += cut
            f.seek(self.scanned)

    def mark_before_event(self, number: int) -> int:
        """The last mark at or before event ``number``."""
        return max(0, bisect.bisect_right(self.numbers, number) - 1)

    def mark_before_time(self, at: int) -> int:
        """The last mark whose first event is stamped before ``at`` (else the first mark)."""
        return max(0, bisect.bisect_left(self.stamps, at) - 1)


def _parse(line: bytes) -> tuple[int, str]:
    stamp, _, message = line.rstrip(b"\n").partition(b"\t")
    return int(stamp), message.decode("utf-8", "replace")


class LogReader:
    """Reads streams by event number and by time, keeping the indexes of the streams read
    most recently (at most ``keep``)."""

    def __init__(self, keep: int = 1024):
        self._indexes: OrderedDict[Path, StreamIndex] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()

    def _index(self, path: Path, f: BinaryIO) -> StreamIndex:
        with self._lock:
            index = self._indexes.pop(path, None)
            size = f.seek(0, 2)
            if index is None or size < index.scanned:  # new, or the file was replaced
                index = StreamIndex()
            index.extend(f)
            self._indexes[path] = index
            while len(self._indexes) > self._keep:
                self._indexes.popitem(last=False)
            return index

    def window(self, path: Path, start_time: int | None, end_time: int | None) -> tuple[int, int]:
        """Event numbers [first, end) of the events stamped in [start_time, end_time), as
        CloudWatch includes a window's start and excludes its end (the whole stream: None)."""
        f = _open(path)
        if f is None:
            return 0, 0
        with f:
            index = self._index(path, f)
            first = 0 if start_time is None else self._first_at(f, index, start_time)
            end = index.events if end_time is None else self._first_at(f, index, end_time)
            return first, max(first, end)

    def _first_at(self, f: BinaryIO, index: StreamIndex, at: int) -> int:
        """The number of the first event stamped at or after ``at`` (the count if none is)."""
        if not index.offsets:
            return 0
        mark = index.mark_before_time(at)
        f.seek(index.offsets[mark])
        number = index.numbers[mark]
        while number < index.events:
            line = f.readline()
            if int(line[: line.index(b"\t")]) >= at:
                return number
            number += 1
        return number

    def read(self, path: Path, start: int, stop: int) -> list[tuple[int, str]]:
        """Events ``start`` .. ``stop`` (as far as the stream has them): (epoch ms, message)."""
        f = _open(path)
        if f is None or stop <= start:
            return []
        with f:
            index = self._index(path, f)
            stop = min(stop, index.events)
            if start >= stop:
                return []
            mark = index.mark_before_event(start)
            f.seek(index.offsets[mark])
            for _ in range(start - index.numbers[mark]):
                f.readline()
            return [_parse(f.readline()) for _ in range(stop - start)]

    def count(self, path: Path) -> int:
        """The events the stream holds so far."""
        f = _open(path)
        if f is None:
            return 0
        with f:
            return self._index(path, f).events


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")  # the callers close it
    except (FileNotFoundError, IsADirectoryError):
        return None


READER = LogReader()  # one per process: the service's, or a test's


def read_events(path: Path, start: int = 0, limit: int = 10_000) -> list[tuple[int, str]]:
    """Events ``start`` .. ``start + limit`` of a stream (empty if the stream has none yet)."""
    return READER.read(path, start, start + limit)


def append_event(path: Path, at: int, message: str) -> None:
    """Add one event (epoch ms ``at``) to a stream whose writer is done with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(f"{at}\t{message}\n".encode())
