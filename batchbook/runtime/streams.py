"""An attempt's log stream as the fork server writes it: what the attempt prints, a line
per event stamped with the epoch millisecond it was read, unbuffered (so whoever follows
the stream sees each read at once), an event at most 256 KiB as in CloudWatch, and the
stream at most ``cap`` bytes: past it, one note says so and the rest is dropped (still
read from the pipe, so the attempt never blocks on it). The file is made at the first
line: a silent attempt costs none. Light on purpose: the fork server imports it.
"""

from __future__ import annotations

import io
import os
import time

MAX_EVENT = 256 * 1024
DEFAULT_CAP_MIB = 1024
NOTE_ROOM = 256  # bytes kept for the note that says a stream was cut


class StreamWriter:
    __slots__ = ("buf", "cap", "cut", "file", "path", "written")

    def __init__(self, path: str, cap: int):
        self.path, self.cap = path, cap
        self.buf = b""  # a line not ended yet
        self.file: io.FileIO | None = None
        self.written = 0
        self.cut = False  # past the cap: the rest is dropped

    def write(self, data: bytes, folders: set[str]) -> None:
        """Add what the attempt wrote; ``folders``: the log folders known to exist."""
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()
        if len(self.buf) > MAX_EVENT:
            lines.append(self.buf)
            self.buf = b""
        if not lines or self.cut:
            return
        if self.file is None:
            folder = os.path.dirname(self.path)
            if folder not in folders:
                os.makedirs(folder, exist_ok=True)
                folders.add(folder)
            self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        stamp = b"%d\t" % (time.time_ns() // 1_000_000)
        events = b"".join(stamp + line + b"\n" for line in lines)
        room = self.cap - NOTE_ROOM - self.written  # the note always fits after the last line
        if len(events) > room:
            self.cut = True
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
        self.file.write(events)
        self.written += len(events)

    def close(self, folders: set[str]) -> None:
        if self.buf:
            self.write(b"\n", folders)
        if self.file is not None:
            self.file.close()
