"""Every process an attempt starts, kept together so that all of it can be killed: what
calls ``setsid`` and what double-forks included.

Where a cgroup v2 hierarchy is writable, each fork server gets a cgroup, each attempt a
cgroup of its own inside it that its first process joins before it runs anything, and
killing is the kernel's ``cgroup.kill``. Elsewhere (no cgroup v2, or not writable) the fork
server is a child subreaper: whatever an attempt leaves behind when its first process exits
is handed to the fork server, which kills it; and the processes of a live attempt are
found by walking /proc's parent links down from its first process.

Light on purpose: the fork server imports it.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time

CGROUPS_ENV = "BATCHBOOK_CGROUPS"  # "off": the /proc fallback even where cgroups work
PR_SET_CHILD_SUBREAPER = 36


def make_cgroup_root(name: str) -> str | None:
    """A new cgroup v2 directory ``name`` beside this process's own, or None where none can be
    made (no cgroup v2 mounted, not writable, or turned off with BATCHBOOK_CGROUPS=off)."""
    if os.environ.get(CGROUPS_ENV) == "off":
        return None
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    except OSError:
        return None
    if own is None:
        return None
    for mount in _cgroup2_mounts():
        path = os.path.join(mount, own.lstrip("/"), name)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            return path
        except OSError:
            continue
        if os.path.exists(os.path.join(path, "cgroup.procs")):
            return path
    return None


def _cgroup2_mounts() -> list[str]:
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        head, _, tail = line.partition(" - ")
        if tail.split(" ", 1)[0] == "cgroup2":
            found.append(head.split()[4].replace("\\040", " "))
    return found


def cgroup_roots(parent_dir: str, prefix: str) -> list[str]:
    """The cgroups named ``prefix...`` beside ``parent_dir``'s (a dead service's, to sweep)."""
    parent = os.path.dirname(parent_dir)
    try:
        return [os.path.join(parent, n) for n in os.listdir(parent) if n.startswith(prefix)]
    except OSError:
        return []


def join_cgroup(path: str) -> None:
    """Move the calling process into cgroup ``path`` (a forked child does, before anything)."""
    fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)


def kill_cgroup(path: str) -> None:
    """SIGKILL every process in cgroup ``path`` and the cgroups under it."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
        return
    except FileNotFoundError:
        if not os.path.isdir(path):
            return
    except OSError:
        return
    # Kernels before 5.14 have no cgroup.kill: one process at a time, each level.
    for top, _, _ in os.walk(path):
        with contextlib.suppress(OSError), open(os.path.join(top, "cgroup.procs")) as f:
            for pid in f.read().split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)


def populated(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.events")) as f:
            return "populated 1" in f.read()
    except OSError:
        return False


def remove_cgroup(path: str) -> bool:
    """Remove cgroup ``path`` and those under it, if they are empty; True when gone."""
    for top, _, _ in sorted(os.walk(path), key=lambda t: -len(t[0])):
        with contextlib.suppress(OSError):
            os.rmdir(top)
    return not os.path.exists(path)


def wait_cgroup_empty(path: str, timeout: float) -> bool:
    """Wait (on the kernel's notification, not a poll) until cgroup ``path`` holds no process."""
    try:
        fd = os.open(os.path.join(path, "cgroup.events"), os.O_RDONLY)
    except OSError:
        return True
    deadline = time.monotonic() + timeout
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        while populated(path):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(left * 1000)  # cgroup.events signals a change with POLLPRI
        return True
    finally:
        os.close(fd)


def become_subreaper() -> bool:
    """Make this process the one orphans of its descendants are handed to (Linux 3.4+)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def children_by_parent() -> dict[int, list[int]]:
    """Every process's children, from /proc's parent links."""
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out.setdefault(ppid, []).append(int(name))
    return out


def session_of(pid: int) -> int | None:
    """The session a process is in (an attempt's first process leads its own), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def descendants(roots: set[int], tree: dict[int, list[int]] | None = None) -> set[int]:
    """``roots`` and every process under them."""
    tree = children_by_parent() if tree is None else tree
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(tree.get(pid, ()))
    return seen


def kill_all(pids: set[int]) -> None:
    """SIGKILL each process and its process group (gone or not ours: nothing happens)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def wait_gone(pids: set[int], timeout: float) -> bool:
    """Wait (through pidfds) until none of ``pids`` runs any more; True if so in time."""
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
        except (OSError, AttributeError):
            continue  # already gone (or no pidfds: nothing to wait on)
    deadline = time.monotonic() + timeout
    try:
        waiting = set(fds)
        while waiting:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select(list(waiting), [], [], left)
            if not ready:
                return False
            waiting -= set(ready)
        return True
    finally:
        for fd in fds:
            os.close(fd)
