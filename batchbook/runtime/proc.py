"""What the engine reads of processes in /proc, and how it signals their groups."""

from __future__ import annotations

import contextlib
import os
import signal
import time

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group ``pid`` leads (gone or not ours: nothing happens)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def boot_ticks() -> int:
    """Now, in the clock ticks since boot that /proc/<pid>/stat counts start times in.

    Read just after a fork, it is a hair later than the child's start time: cheaper
    than reading the child's /proc entry, and as good for recognising it later.
    """
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * _TICKS_PER_SECOND)


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/pid/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[19])


def group_rss(pgids: set[int]) -> dict[int, int]:
    """Resident memory in bytes of every process in each of the given process groups."""
    totals = dict.fromkeys(pgids, 0)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pgid = int(fields[2])
        if pgid in totals:
            totals[pgid] += int(fields[21]) * PAGE_SIZE
    return totals


# The fork server reads the clock this soon after forking (1 s at 100 Hz).
STARTED_WITHIN_TICKS = 100


def kill_stale_group(pid: int | None, forked_at: int | None) -> bool:
    """Kill a process group left behind by a crashed engine, if its leader is still the same process.

    ``forked_at`` is the boot-time tick the fork server read just after forking it; a
    process with that pid that started at another time is someone else's.
    """
    if pid is None or forked_at is None:
        return False
    started = start_ticks(pid)
    if started is None or not 0 <= forked_at - started <= STARTED_WITHIN_TICKS:
        return False
    signal_group(pid, signal.SIGKILL)
    return True
