"""What travels through the object store: the function, the inputs and the per-input results.

A run lives under ``runs/<run id>/``:

- ``run.json``     the manifest: name, function, code hash, inputs, chunk size, options,
                   and where each part of the payload lies
- ``payload.bin``  written once, in one object (every object costs here): the
                   function (cloudpickle, by value), the keyword arguments, one pickle
                   per chunk (a list of argument tuples), an index of the chunks'
                   offsets (big-endian uint64) and the source text of by-value code
- ``results/<chunk>/<attempt>-<flush>.rec``  one object per flush of a chunk attempt:
                   a block of the inputs that ended since the last flush (at least every
                   100 ms, at once after a failure)

and ``ledger/<run id>.json`` (see :mod:`batchbook.functions.ledger`) says it exists.

A block is a header (pickle length, crc32, sizes of out-of-band buffers), a pickled
list of Outcome tuples and the large payloads beside it. Objects appear whole; a block
that fails its length or checksum anyway (a store that lost part of it) is ignored, so
each input's result is all there or absent.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import inspect
import itertools
import json
import pickle
import struct
import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

from batchbook.functions.keptoutput import Kept
from batchbook.functions.pickling import dumps, to_bytes
from batchbook.wording import count

_BLOCK = struct.Struct(">III")  # pickle length, crc32 of pickle and buffers, buffer count
OUT_OF_BAND = 64 * 1024  # payloads this big are written beside the block's pickle, not in it
# Values of these exact types (str: shorter than OUT_OF_BAND) travel as they are, inside the
# block's pickle: immutable, so pickled a little later they are still what the function
# returned, and no pickle per value.
INLINE = frozenset({int, float, complex, str, bool, type(None)})
PICKLED = (bytes, memoryview)  # a payload of one of these is a pickle (a bytes value never inlines)


class Outcome(NamedTuple):
    """How one input ended on the worker."""

    input: int  # the input's position in the map
    ok: bool
    # The value: itself (a small immutable scalar, see INLINE), its pickle, or a tuple of its
    # pickle and its big buffers (see encode_value); or a pickled dict(type, message, traceback).
    payload: Any
    attempt: int
    started: int  # epoch ms
    stopped: int
    peak_kib: int  # the worker's peak RSS when the input ended
    log_start: int  # the input's log lines are lines log_start .. log_end of the attempt's stream
    log_end: int
    # the head and tail of what it printed (see keptoutput), None if nothing; absent in
    # records written before batchbook kept them
    output: tuple[list[str], int, list[str]] | None = None

    def value(self) -> Any:
        return decode_value(self.payload)

    def error(self) -> dict[str, str]:
        return pickle.loads(self.payload)

    def kept(self) -> Kept | None:
        """The head and tail of what the input printed (None: nothing, or not kept)."""
        return Kept(*self[9]) if len(self) > 9 and self[9] else None


_outcome = functools.partial(tuple.__new__, Outcome)  # Outcome._make without its checks


def run_key(run_id: str, name: str) -> str:
    return f"runs/{run_id}/{name}"


def payload_key(manifest: dict[str, Any]) -> str:
    """Where a run's payload is: its own, or its schedule's (a firing runs the payload its
    schedule stored once)."""
    return run_key(manifest.get("payloadOf") or manifest["id"], "payload.bin")


def read_part(store: Any, manifest: dict[str, Any], span: list[int]) -> bytes:
    return store.get_range(payload_key(manifest), span[0], span[1])


def results_key(run_id: str, chunk: int, attempt: int, flush: int) -> str:
    return f"{results_prefix(run_id, chunk)}{attempt:02d}-{flush:06d}.rec"


def results_prefix(run_id: str, chunk: int | None = None) -> str:
    """Where the results of a run (or of one of its chunks) are."""
    return f"runs/{run_id}/results/" + ("" if chunk is None else f"{chunk}/")


def attempt_of(results_key: str) -> int:
    """The attempt number a results key names (see results_key)."""
    return int(results_key.rsplit("/", 1)[1].split("-", 1)[0])


def block(outcomes: list[tuple[Any, ...]]) -> list[Any]:
    """One block of finished inputs (tuples in Outcome's field order), as parts to append.

    Large payloads travel out of band (pickle protocol 5): written as they are, after
    the block's pickle, rather than copied into it.
    """
    buffers: list[pickle.PickleBuffer] = []
    items = [
        (*o[:2], pickle.PickleBuffer(o[2]), *o[3:])
        if type(o[2]) is bytes and len(o[2]) >= OUT_OF_BAND
        else o
        for o in outcomes
    ]
    body = pickle.dumps(items, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    crc = zlib.crc32(body)
    for raw in raws:
        crc = zlib.crc32(raw, crc)
    sizes = struct.pack(f">{len(raws)}Q", *(len(r) for r in raws))
    return [_BLOCK.pack(len(body), crc, len(raws)), sizes, body, *raws]


def read_blocks(data: bytes | memoryview) -> tuple[list[Outcome], int]:
    """The outcomes in the whole blocks at the start of ``data``, and how many bytes they took."""
    out: list[Outcome] = []
    pos, view = 0, memoryview(data)
    while len(data) - pos >= _BLOCK.size:
        size, crc, count = _BLOCK.unpack_from(data, pos)
        pos_sizes = pos + _BLOCK.size
        if len(data) < pos_sizes + 8 * count:
            break
        sizes = struct.unpack_from(f">{count}Q", data, pos_sizes)
        start = pos_sizes + 8 * count
        end = start + size + sum(sizes)
        if len(data) < end:
            break  # a torn block: the worker died mid-write
        body = view[start : start + size]
        buffers, at, check = [], start + size, zlib.crc32(body)
        for n in sizes:
            buffers.append(view[at : at + n])
            check = zlib.crc32(buffers[-1], check)
            at += n
        if check != crc:
            break
        out.extend(map(_outcome, pickle.loads(body, buffers=buffers)))
        pos = end
    return out, pos


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection inside (objects are still counted, and collected after).

    Building or decoding the inputs or results of a big map allocates many small tuples;
    collected as they come, every few hundred of them, they also set off full collections
    of the whole process now and then.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def encode_value(value: Any) -> tuple[Any, int]:
    """The payload of a value that is not INLINE, and how many bytes it will take.

    Its pickle, except that writable buffers of OUT_OF_BAND bytes or more that pickle
    protocol 5 hands out of band (NumPy arrays, pandas' blocks...) are kept out of it: the
    payload is then ``(pickle, *buffers)``, the buffers
    still the value's own memory, written to the result file as they are (no copy into a
    pickle); a big bytes value is ``(b"", buffer)``. Such a payload must be written before
    the value can change, i.e. before the function runs again.
    """
    if type(value) is bytes and len(value) >= OUT_OF_BAND:
        return (b"", pickle.PickleBuffer(value)), len(value)
    buffers: list[pickle.PickleBuffer] = []

    def in_band(buffer: pickle.PickleBuffer) -> bool:  # False: beside the pickle
        raw = buffer.raw()
        if raw.readonly or raw.nbytes < OUT_OF_BAND:  # read-only ones load as plain pickle's
            return True
        buffers.append(buffer)
        return False

    try:
        body = pickle.dumps(value, protocol=5, buffer_callback=in_band)
    except Exception:  # lambdas, local classes...: cloudpickle is slower, so only when needed
        buffers.clear()
        body = to_bytes(value, buffer_callback=in_band)
    if not buffers:
        return body, len(body)
    return (body, *buffers), len(body) + sum(b.raw().nbytes for b in buffers)


def decode_value(payload: Any, loads: Any = pickle.loads) -> Any:
    """The value of an ok Outcome's payload (see Outcome.payload and encode_value)."""
    if isinstance(payload, PICKLED):
        return loads(payload)
    if type(payload) is tuple:  # big buffers beside the pickle
        body, *buffers = payload
        if not body:
            return bytes(buffers[0])
        return loads(body, buffers=[bytearray(b) for b in buffers])  # writable copies
    return payload


def pack_payload(
    function: bytes, kwargs: bytes, inputs: bytes, offsets: list[int], sources: dict[str, str]
) -> tuple[list[bytes], dict[str, list[int]]]:
    """The parts of ``payload.bin`` and the layout (byte spans) the manifest keeps of them."""
    index = struct.pack(f">{len(offsets)}Q", *offsets)
    spans, parts, pos = {}, [], 0
    for name, part in (
        ("function", function),
        ("kwargs", kwargs),
        ("inputs", inputs),
        ("index", index),
        ("sources", json.dumps(sources).encode()),
    ):
        spans[name] = [pos, pos + len(part)]
        parts.append(part)
        pos += len(part)
    return parts, spans


def chunk_span(layout: dict[str, list[int]], index_bytes: bytes) -> tuple[int, int]:
    """The byte span in ``payload.bin`` of one chunk's inputs, from its 16 index bytes."""
    first, last = struct.unpack(">2Q", index_bytes)
    base = layout["inputs"][0]
    return base + first, base + last


def all_chunks(layout: dict[str, list[int]], payload: bytes | memoryview) -> list[Any]:
    """Every input's argument tuple, from the whole ``payload.bin``."""
    start, end = layout["index"]
    offsets = struct.unpack(f">{(end - start) // 8}Q", payload[start:end])
    base = layout["inputs"][0]
    out: list[Any] = []
    for first, last in itertools.pairwise(offsets):
        out.extend(pickle.loads(payload[base + first : base + last]))
    return out


def chunk_inputs(
    args: list[tuple[Any, ...]], bounds: list[tuple[int, int]], filenames: set[str]
) -> tuple[bytes, list[int]]:
    """Pickle each chunk's argument tuples; return the concatenation and the offsets
    (the files of code pickled by value are added to ``filenames``)."""
    parts, offsets, pos = [], [0], 0
    for start, end in bounds:
        try:
            part = to_bytes(args[start:end], filenames)
        except Exception:
            for i in range(start, end):  # find the input to blame
                shown = args[i][0] if len(args[i]) == 1 else args[i]
                dumps(args[i], f"input {i} ({_short(shown)})")
            raise
        parts.append(part)
        pos += len(part)
        offsets.append(pos)
    return b"".join(parts), offsets


def code_hash(func: Any, pickled: bytes) -> str:
    """A short hash of the function's source (or, without source, of its pickle)."""
    try:
        text = inspect.getsource(func).encode()
    except (OSError, TypeError):
        text = pickled
    return hashlib.sha256(text).hexdigest()[:12]


def summary(args: list[tuple[Any, ...]]) -> str:
    if not args:
        return "no inputs"
    first = ", ".join(_short(a) for a in args[0])
    return f"{count(len(args), 'input')}, first ({first})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to_json(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, indent=1).encode()
