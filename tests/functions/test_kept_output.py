"""The head and tail of each input's output, kept beside its result: what logs() shows
when the log stream cannot be read or has lost the input's lines."""

from __future__ import annotations

from pathlib import Path

import pytest

import batchbook as batch
from batchbook.functions.keptoutput import HEAD_LINES, LINE_CHARS, TAIL_LINES, Kept, OutputKeeper
from batchbook.server.discovery import stop_service
from tests.functions.test_aws_parity import aws_on_local
from tests.server.conftest import start

LOUD = 40_000  # lines of 60 characters: 2.6 MB, past a 1 MiB stream cap


def chatty(n: int) -> int:
    for i in range(n):
        print("x" * 56, f"{i:05d}")
    return n


def test_the_keeper_holds_the_first_and_last_lines_and_counts_the_rest() -> None:
    keeper = OutputKeeper()
    assert keeper.take() is None  # nothing printed: nothing kept
    for i in range(HEAD_LINES + TAIL_LINES + 7):
        keeper.write(f"line {i}")
        keeper.write("\n" if i % 2 else "\nno newline yet"[:1])  # lines ended in pieces
    keeper.write("y" * (3 * LINE_CHARS))  # a long last line, never ended
    kept = Kept(*keeper.take())  # type: ignore[misc]
    assert kept.head == [f"line {i}" for i in range(HEAD_LINES)]
    assert kept.skipped == 8
    assert kept.tail[-1] == "y" * LINE_CHARS and kept.tail[0] == f"line {HEAD_LINES + 8}"
    assert kept.lines()[HEAD_LINES] == "[batchbook: 8 lines not kept here]"
    assert kept.lines(2) == [kept.tail[-2], kept.tail[-1]]
    assert kept.lines(TAIL_LINES + 1)[0] == f"line {HEAD_LINES - 1}"
    keeper.write("next input\n")  # take() started afresh
    assert keeper.take() == (["next input"], 0, [])


def test_logs_come_from_the_kept_lines_when_the_stream_lost_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    start(state, "--max-log-stream-mib", "1")  # the stream drops what is past 1 MiB
    try:
        with batch.use(state_dir=state):
            job = batch.map(chatty, [3, LOUD], chunksize=2).wait(progress=False)
            assert job.logs(0) == [f"{'x' * 56} {i:05d}" for i in range(3)]  # from the stream
            lines = job.logs(1)
            assert len(lines) == HEAD_LINES + 1 + TAIL_LINES
            assert lines[0] == f"{'x' * 56} 00000"
            assert lines[-1] == f"{'x' * 56} {LOUD - 1:05d}"  # the stream never had it
            assert lines[HEAD_LINES] == (
                f"[batchbook: {LOUD - HEAD_LINES - TAIL_LINES} lines not kept here]"
            )
            assert job.logs(1, tail=3) == [f"{'x' * 56} {i:05d}" for i in range(LOUD - 3, LOUD)]
    finally:
        stop_service(state)


def test_on_aws_logs_survive_a_log_stream_that_cannot_be_read(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CloudWatch Logs at moto's server, which never saw the jobs' streams: GetLogEvents
    fails with ResourceNotFoundException, as it does without the permission or after the
    retention period; logs() shows the lines the worker kept in S3."""
    state = tmp_path / "state"
    try:
        _, _, store = aws_on_local(state, monkeypatch)
        monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", s3_endpoint)
        with batch.use("aws", region="us-east-1", queue="lab", store=store):
            job = batch.map(chatty, [2, 0]).wait(timeout=120, progress=False)
            assert job.logs(0) == [f"{'x' * 56} {i:05d}" for i in range(2)]
            assert job.logs(0, tail=1) == [f"{'x' * 56} 00001"]
            assert job.logs(1) == []  # it printed nothing: no read at all
    finally:
        stop_service(state)
