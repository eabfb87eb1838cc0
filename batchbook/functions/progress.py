"""The text progress bar ``MapJob.wait()`` draws in terminals."""

from __future__ import annotations

import sys
import time


class TextBar:
    """A one-line progress bar for terminals, redrawn at most 5 times a second."""

    def __init__(self, total: int):
        self.total = total
        self._last = 0.0

    def show(self, done: int, failed: int, elapsed: float, last: bool = False) -> None:
        """``done`` inputs have a value, ``failed`` ended without one."""
        now = time.monotonic()
        finished = done + failed
        if now - self._last < 0.2 and not last:
            return
        self._last = now
        width = 30
        filled = width * finished // max(self.total, 1)
        failures = f", {failed} failed" if failed else ""
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {finished}/{self.total} finished"
            f" ({done} done{failures}), {elapsed:.1f} s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
