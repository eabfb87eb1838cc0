"""Per-attempt log streams: one file per stream, one ``<epoch ms>\\t<message>`` line per event."""

from __future__ import annotations

from itertools import islice
from pathlib import Path


def read_events(path: Path, start: int = 0, limit: int = 10_000) -> list[tuple[int, str]]:
    """Events ``start`` .. ``start + limit`` of a stream (empty if the stream has none yet)."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except (FileNotFoundError, IsADirectoryError):
        return []
    with f:
        out = []
        for line in islice(f, start, start + limit):
            stamp, _, message = line.rstrip(b"\n").partition(b"\t")
            out.append((int(stamp), message.decode("utf-8", "replace")))
        return out


def append_event(path: Path, at: int, message: str) -> None:
    """Add one event (epoch ms ``at``) to a stream whose writer is done with it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(f"{at}\t{message}\n".encode())
