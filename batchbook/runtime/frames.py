"""The frames the engine and its fork server exchange over a pipe: a 4-byte big-endian
length, then a pickle (see :mod:`batchbook.runtime.forkserver` for the messages)."""

from __future__ import annotations

import pickle
import struct
from typing import Any

_HEADER = struct.Struct(">I")


def encode(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def decode_frames(buffer: bytearray) -> list[Any]:
    """Take every complete frame off the front of ``buffer``."""
    out = []
    pos = 0
    while len(buffer) - pos >= 4:
        (size,) = _HEADER.unpack_from(buffer, pos)
        if len(buffer) - pos - 4 < size:
            break
        out.append(pickle.loads(buffer[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    del buffer[:pos]
    return out
