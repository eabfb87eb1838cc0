"""The head and tail of what each input printed, kept beside its result in the store.

The attempt's log stream (CloudWatch Logs on AWS) holds every line, but it may be gone
(a retention period, a quota) or unreadable (no logs:GetLogEvents permission); the lines
kept here, a few per input, are what ``MapJob.logs`` shows then.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

HEAD_LINES = 50  # the first lines of an input's output that are kept...
TAIL_LINES = 50  # ...and the last ones
LINE_CHARS = 400  # a longer line is cut here: at most 40 KB kept per input


class Kept(NamedTuple):
    """What is kept of one input's output: its first lines, how many lines between them
    and the last lines were not kept, and the last lines."""

    head: list[str]
    skipped: int
    tail: list[str]

    def lines(self, last: int | None = None) -> list[str]:
        """The kept lines, with one line saying how many were left out between them;
        ``last``: only the last that many of them (the note never counts as one)."""
        gap = [f"[batchbook: {self.skipped} lines not kept here]"] if self.skipped else []
        if last is None:
            return [*self.head, *gap, *self.tail]
        if last <= len(self.tail):
            return self.tail[len(self.tail) - last :] if last else []
        from_head = last - len(self.tail)
        return [*self.head[max(0, len(self.head) - from_head) :], *gap, *self.tail]


class OutputKeeper:
    """Fed every piece of text the function writes; ``take()`` ends one input's output."""

    def __init__(self) -> None:
        self._head: list[str] = []
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._skipped = 0
        self._partial = ""  # the current line, not ended yet
        self.written = False  # since the last take()
        self.kept_chars = 0  # in what the last take() returned

    def write(self, text: str) -> None:
        self.written = True
        *ended, rest = text.split("\n")
        for piece in ended:
            self._line((self._partial + piece)[:LINE_CHARS])
            self._partial = ""
        if len(self._partial) < LINE_CHARS:
            self._partial = (self._partial + rest)[:LINE_CHARS]

    def _line(self, line: str) -> None:
        if len(self._head) < HEAD_LINES:
            self._head.append(line)
            return
        if len(self._tail) == TAIL_LINES:
            self._skipped += 1
        self._tail.append(line)

    def take(self) -> tuple[list[str], int, list[str]] | None:
        """The output since the last take() (None: there was none), as a plain tuple in
        Kept's order (what the result records hold), and start afresh."""
        if not self.written:
            return None
        if self._partial:
            self._line(self._partial)
        kept = (self._head, self._skipped, list(self._tail))
        self.kept_chars = sum(map(len, self._head)) + sum(map(len, self._tail))
        self._head, self._skipped, self._partial, self.written = [], 0, "", False
        self._tail.clear()
        return kept
