"""The log streams' seek index: reads by event number and by time agree with reading the
whole file, as the stream grows, with events long and short; marks stay one SPAN apart."""

from __future__ import annotations

import random
from pathlib import Path

from batchbook.runtime.logs import SPAN, LogReader, StreamIndex


def _write(path: Path, events: list[tuple[int, str]]) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(f"{ts}\t{msg}\n".encode() for ts, msg in events))


def _whole(path: Path) -> list[tuple[int, str]]:
    out = []
    for line in path.read_bytes().splitlines():
        stamp, _, msg = line.partition(b"\t")
        out.append((int(stamp), msg.decode()))
    return out


def test_reads_by_number_and_time_match_the_whole_file_as_it_grows(tmp_path: Path) -> None:
    path, reader, rng = tmp_path / "stream", LogReader(), random.Random(7)
    ts = 1_700_000_000_000
    for _round in range(4):
        batch = []
        for i in range(20_000):
            ts += rng.choice((0, 0, 1, 3))  # runs of equal stamps, as a fast printer makes
            size = 300_000 if i % 7919 == 0 else rng.randrange(0, 80)  # some events > SPAN
            batch.append((ts, f"{i}:" + "x" * size))
        _write(path, batch)
        whole = _whole(path)
        assert reader.count(path) == len(whole)
        for _ in range(60):
            start = rng.randrange(len(whole))
            stop = start + rng.randrange(0, 40)
            assert reader.read(path, start, stop) == whole[start:stop]
        at = whole[rng.randrange(len(whole))][0]
        first, end = reader.window(path, at, at + 2)
        expected = [k for k, (t, _) in enumerate(whole) if at <= t < at + 2]
        assert (first, end) == (expected[0], expected[-1] + 1)
    assert reader.read(path, len(whole) - 1, len(whole) + 10) == whole[-1:]
    assert reader.window(path, ts + 1, None) == (len(whole), len(whole))


def test_marks_are_a_span_apart_so_a_read_costs_what_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "stream"
    _write(path, [(1_000 + i, "y" * 50) for i in range(100_000)])
    index = StreamIndex()
    with open(path, "rb") as f:
        index.extend(f)
    gaps = [b - a for a, b in zip(index.offsets, index.offsets[1:], strict=False)]
    assert index.events == 100_000
    assert gaps and max(gaps) <= SPAN and min(gaps) > SPAN - 100


def test_an_event_still_being_written_is_not_an_event_yet(tmp_path: Path) -> None:
    path, reader = tmp_path / "stream", LogReader()
    _write(path, [(5, "one")])
    with open(path, "ab") as f:
        f.write(b"6\ttw")  # the writer's next event, half written
    assert reader.read(path, 0, 10) == [(5, "one")]
    with open(path, "ab") as f:
        f.write(b"o\n")
    assert reader.read(path, 0, 10) == [(5, "one"), (6, "two")]
    assert reader.read(tmp_path / "none", 0, 10) == [] and reader.count(tmp_path / "none") == 0
