"""An attempt's log stream as the fork server writes it: what the attempt prints, a line
per event stamped with the epoch millisecond it was read, unbuffered (so whoever follows
the stream sees each read at once), an event at most 256 KiB as in CloudWatch, and the
stream at most ``cap`` bytes: past it, one note says so and the rest is dropped (still
read from the pipe, so the attempt never blocks on it). The file is made at the first
line: a silent attempt costs none. On a full disk the lines are dropped (still read), and
once there is room again a note says how much was lost, before the lines that follow.
Light on purpose: the fork server imports it.
"""

from __future__ import annotations

import errno
import io
import os
import time

MAX_EVENT = 256 * 1024
DEFAULT_CAP_MIB = 1024
NOTE_ROOM = 256  # bytes kept for the note that says a stream was cut


_FULL = (errno.ENOSPC, errno.EDQUOT)


class StreamWriter:
    __slots__ = ("buf", "cap", "cut", "dropped", "file", "path", "written")

    def __init__(self, path: str, cap: int):
        self.path, self.cap = path, cap
        self.buf = b""  # a line not ended yet
        self.file: io.FileIO | None = None
        self.written = 0
        self.cut = False  # past the cap: the rest is dropped
        self.dropped = 0  # bytes a full disk had no room for, not yet noted in the stream

    def write(self, data: bytes, folders: set[str]) -> None:
        """Add what the attempt wrote; ``folders``: the log folders known to exist."""
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()
        if len(self.buf) > MAX_EVENT:
            lines.append(self.buf)
            self.buf = b""
        if not lines or self.cut:
            return
        stamp = b"%d\t" % (time.time_ns() // 1_000_000)
        try:
            self._write(lines, stamp, folders)
        except OSError as e:
            if e.errno not in _FULL:
                raise
            self.dropped += sum(len(stamp) + len(line) + 1 for line in lines)

    def _write(self, lines: list[bytes], stamp: bytes, folders: set[str]) -> None:
        if self.file is None:
            folder = os.path.dirname(self.path)
            if folder not in folders:
                os.makedirs(folder, exist_ok=True)
                folders.add(folder)
            self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        if self.dropped:
            self._note_dropped(stamp)
        events = b"".join(stamp + line + b"\n" for line in lines)
        room = self.cap - NOTE_ROOM - self.written  # the note always fits after the last line
        cutting = len(events) > room
        if cutting:
            kept = b""
            for line in lines:  # the whole lines that fit, then the note
                event = stamp + line + b"\n"
                if len(kept) + len(event) > room:
                    break
                kept += event
            events = (
                kept
                + stamp
                + (
                    b"[batchbook] this log stream reached its cap of %d MiB; the rest of the "
                    b"attempt's output is not kept (batchbook serve --max-log-stream-mib)\n"
                    % (self.cap >> 20)
                )
            )
        self._put(events)
        self.cut = cutting  # only once the note is in: a full disk may have refused it

    def _note_dropped(self, stamp: bytes) -> None:
        """Room again: first say what a full disk dropped."""
        self._put(
            stamp
            + b"[batchbook] %d bytes of this attempt's output were dropped: the disk was full\n"
            % self.dropped
        )
        self.dropped = 0

    def _put(self, data: bytes) -> None:
        """Append whole events, or nothing: what a full disk cut short is taken back, so
        the stream never holds half an event."""
        assert self.file is not None
        start, view = self.written, memoryview(data)
        try:
            while view:
                written = self.file.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, "no space left on device")
                self.written += written
                view = view[written:]
        except OSError:
            if self.written != start:
                os.ftruncate(self.file.fileno(), start)
                self.written = start
            raise

    def close(self, folders: set[str]) -> None:
        if self.buf:
            self.write(b"\n", folders)
        if self.dropped and self.file is not None:  # a last try at the note
            try:
                self._note_dropped(b"%d\t" % (time.time_ns() // 1_000_000))
            except OSError:
                pass
        if self.file is not None:
            self.file.close()
