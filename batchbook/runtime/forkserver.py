"""The fork server that launches every attempt (``python -m batchbook.runtime.forkserver``).

A single-threaded, pre-warmed Python process. For each start request it forks a
child that becomes its own session and process group, runs in a scratch
directory with stdout and stderr on one pipe, and either execs the command or,
for ``python -c ...`` / ``python -m ...``, runs it in the already-warm
interpreter exactly as a fresh one would. The fork server reads the pipes, writes
each line with a millisecond timestamp to the attempt's log file, reaps the
children with ``wait4`` (exit status, peak RSS, CPU time) and reports back.

Usage: ``python -m batchbook.runtime.forkserver <scratch root> [--preload MODULE,...]
[--max-log-stream-mib N] [--cgroup DIR] [--sigchld]``. Protocol on its stdin/stdout: frames (:mod:`batchbook.runtime.frames`).
In: ("start", task_id, argv, env_delta, log_path). Out: ("started", task_id, pid,
boot ticks just after the fork, epoch ms then) and ("exited", task_id, exit_code, peak_rss_kib, cpu_seconds).
When its stdin closes (the engine is gone) it kills every attempt, whole, and exits: with
``--cgroup``, each attempt runs in a cgroup of its own under DIR; without, this process is
a child subreaper and kills what an attempt leaves behind (:mod:`batchbook.runtime.containment`).

This module imports nothing from batchbook beyond the package root and the light frames,
streams, /proc, containment and pythonrun modules, on purpose. The modules it is told to preload (batchbook's map runner,
say) are loaded just before the first ``python -m`` start, so that every attempt of that
wave forks with them warm (commands started after that see them, and what they import,
already in sys.modules).

Nearly all of a short attempt's cost is the kernel's: the fork, each page the child
(or this process, while children share it) writes being copied, and the exit. Hence
fork(2) without os.fork's hooks (see load_libc), exits seen through pidfds (children
then reset no signal disposition), ``-c`` code compiled once, the C heap's free pages
handed back, and the starts of one message batch forked back to back.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import resource
import select
import shutil
import signal
import sys
import threading
import time
import types
import warnings
from typing import Any

from batchbook.runtime.containment import (
    become_subreaper,
    children_by_parent,
    descendants,
    join_cgroup,
    kill_all,
    kill_cgroup,
    populated,
    session_of,
)
from batchbook.runtime.frames import decode_frames, encode
from batchbook.runtime.proc import boot_ticks
from batchbook.runtime.pythonrun import run_python
from batchbook.runtime.secrets import hidden
from batchbook.runtime.streams import DEFAULT_CAP_MIB, StreamWriter

_PYTHON_NAMES = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
# Variables that change how an interpreter starts: with any of them set, exec a real one.
_STARTUP_VARS = {
    "PYTHONHOME",
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "PYTHONWARNINGS",
    "PYTHONSAFEPATH",
    "PYTHONNOUSERSITE",
    "PYTHONSTARTUP",
    "PYTHONDEVMODE",
    "PYTHONUTF8",
    "PYTHONIOENCODING",
    "PYTHONINSPECT",
    "PYTHONVERBOSE",
    "PYTHONDEBUG",
    "PYTHONMALLOC",
    "PYTHONFAULTHANDLER",
    "PYTHONTRACEMALLOC",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONPLATLIBDIR",
    "PYTHONINTMAXSTRDIGITS",
}


def plan(argv: list[str], env: dict[str, str]) -> tuple[str, list[str]]:
    """("c", [flags, code, *args]) / ("m", [...]) for the fast path, else ("exec", argv)."""
    if not argv:
        return "exec", argv
    is_python = os.path.basename(argv[0]) in _PYTHON_NAMES or (
        os.path.isabs(argv[0]) and os.path.realpath(argv[0]) == os.path.realpath(sys.executable)
    )
    if not is_python:
        return "exec", argv
    rest = argv[1:]
    flags = ""
    while rest and rest[0] in ("-u", "-B"):
        flags += rest.pop(0)[1]
    if len(rest) >= 2 and rest[0] in ("-c", "-m") and not (_STARTUP_VARS & env.keys()):
        return rest[0][1], [flags, *rest[1:]]
    return "exec", [sys.executable, *argv[1:]]


class Child:
    __slots__ = ("cgroup", "fd", "log", "pid", "rusage", "scratch", "status", "task_id")

    def __init__(
        self, task_id: str, pid: int, fd: int, log: StreamWriter, scratch: str, cgroup: str | None
    ):
        self.task_id, self.pid, self.fd, self.log, self.scratch = task_id, pid, fd, log, scratch
        self.cgroup = cgroup  # the attempt's own cgroup, if there are cgroups
        self.status: int | None = None
        self.rusage: Any = None


class ForkServer:
    def __init__(
        self,
        ctrl_in: int,
        ctrl_out: int,
        scratch_root: str,
        pidfds: bool = True,
        preload: tuple[str, ...] = (),
        log_cap: int = DEFAULT_CAP_MIB << 20,
        cgroup: str | None = None,
    ):
        self.ctrl_in, self.ctrl_out, self.scratch_root = ctrl_in, ctrl_out, scratch_root
        self.preload = preload  # loaded before the first `python -m` start (see warm_up)
        self.log_cap = log_cap  # bytes an attempt's log stream may hold
        # the service's environment, but what only a job's own secrets may give it (gone from
        # this process's too: python attempts run in it, forked, with its os.environ)
        for name in [k for k in os.environ if hidden(k)]:
            del os.environ[name]
        self.base_env = dict(os.environ)
        own = set(filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)))
        self.base_path = [p for p in sys.path[1:] if p not in own]
        self.children: dict[int, Child] = {}
        self.by_fd: dict[int, Child] = {}
        self.inbox = bytearray()
        self.poll = select.epoll()
        self.poll.register(ctrl_in, select.EPOLLIN)
        # How exits are seen: each child's pidfd turns readable when it exits (Linux 5.3+),
        # which leaves every signal disposition as a fresh interpreter has it, so children
        # need not reset any; else SIGCHLD, through a handler and a wakeup pipe.
        self.by_pidfd: dict[int, Child] = {}
        self.wake_r = -1
        if not (pidfds and pidfds_work()):
            self.wake_r, wake_w = os.pipe()
            os.set_blocking(self.wake_r, False)
            os.set_blocking(wake_w, False)
            signal.signal(signal.SIGCHLD, lambda *_: None)
            signal.set_wakeup_fd(wake_w)
            self.poll.register(self.wake_r, select.EPOLLIN)
        # A running child holds two fds here (its pipe, its pidfd): make room for thousands,
        # and give each child back the limit it would have had.
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
        soft, hard = self.nofile
        room = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        self.nofile_raised = soft < room
        if self.nofile_raised:
            resource.setrlimit(resource.RLIMIT_NOFILE, (room, hard))
        # argv -> (mode, args, compiled -c code): an array's children share one command
        self.plans: dict[tuple[str, ...], tuple[str, list[str], types.CodeType | None]] = {}
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.free_scratch: list[str] = []  # empty scratch directories, reused instead of made anew
        self.log_dirs: set[str] = set()
        self.warm = not preload  # the preload modules loaded yet?
        # Every process of an attempt is killed with it (see containment): in its own cgroup
        # under ``cgroup``, or else handed back here when it outlives the attempt's first one.
        self.cgroup = cgroup
        self.free_cgroups: list[str] = []  # empty, reused instead of made anew
        self.dead_cgroups: list[str] = []  # killed: reused once the kernel has emptied them
        self.subreaper = cgroup is None and become_subreaper()
        self.orphans: set[int] = set()  # handed back to us and killed: to reap

    def serve(self) -> None:
        release_free_memory()
        gc.freeze()  # keep the warm heap shared with the children (no copy-on-write by gc)
        # Lean on purpose: every page this loop writes is copied once per fork while the
        # children share it.
        poll, ctrl, wake = self.poll.poll, self.ctrl_in, self.wake_r
        by_fd, by_pidfd = self.by_fd, self.by_pidfd
        while True:
            out: list[bytes] = []
            for fd, _ in poll():
                if fd == ctrl:
                    data = os.read(ctrl, 65536)
                    if not data:
                        self.shutdown()
                        return
                    self.inbox += data
                    starts = [m[1:] for m in decode_frames(self.inbox) if m[0] == "start"]
                    out.extend(self.start(starts))
                elif fd in by_pidfd:
                    out.append(self.reap(by_pidfd.pop(fd), fd))
                elif fd == wake:
                    try:
                        while os.read(wake, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    out.extend(self.reap_any())
                elif fd in by_fd:  # (reap may have closed it earlier in this round)
                    done = self.pump(fd)
                    if done:
                        out.append(done)
            if any(out):
                self.send(b"".join(out))

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.ctrl_out, view)
            view = view[written:]

    def start(self, requests: list[tuple[Any, ...]]) -> list[bytes]:
        """Fork a child for each (task_id, argv, env_delta, log_path); the "started" messages.

        Everything is prepared first and the forks follow one another: between two forks
        this process writes few pages, and each page it writes while children share it
        is copied.
        """
        ready = []
        for task_id, argv, env_delta, log_path in requests:
            try:
                mode, args, compiled = self.plan(argv, env_delta)
                scratch = self.scratch_for(task_id)
            except Exception as e:  # one request's fault (or a full disk): its child says so
                mode, args, compiled = "refused", [f"{type(e).__name__}: {e}"], None
                scratch = ""
            if mode == "m" and not self.warm:
                self.warm_up()
            cgroup = None
            if self.free_cgroups:
                cgroup = self.free_cgroups.pop()
            elif self.cgroup is not None:
                cgroup = os.path.join(self.cgroup, task_id)
                try:
                    os.mkdir(cgroup)
                except OSError:
                    cgroup = None  # it runs all the same, its process group killed as ever
            ready.append(
                (task_id, log_path, scratch, cgroup, *os.pipe(), mode, args, compiled, env_delta)
            )
        forked = []
        for _, _, scratch, cgroup, _, w, mode, args, compiled, env_delta in ready:
            pid = fork()
            if pid == 0:  # pragma: no cover - runs in the child
                self.become_child(w, scratch, cgroup, mode, args, compiled, env_delta)
            forked.append((pid, boot_ticks(), time.time_ns() // 1_000_000))
        out = []
        for (pid, ticks, at), (task_id, log_path, scratch, cgroup, r, w, *_) in zip(
            forked, ready, strict=True
        ):
            os.close(w)
            os.set_blocking(r, False)
            log = StreamWriter(log_path, self.log_cap)
            child = Child(task_id, pid, r, log, scratch, cgroup)
            self.children[pid] = child
            self.by_fd[r] = child
            self.poll.register(r, select.EPOLLIN)
            if self.wake_r < 0:
                pidfd = os.pidfd_open(pid)
                self.by_pidfd[pidfd] = child
                self.poll.register(pidfd, select.EPOLLIN)
            out.append(encode(("started", task_id, pid, ticks, at)))
        return out

    def scratch_for(self, task_id: str) -> str:
        """An empty scratch directory for an attempt: one a finished attempt left empty, or new."""
        if self.free_scratch:
            return self.free_scratch.pop()
        scratch = os.path.join(self.scratch_root, task_id)
        os.makedirs(scratch, exist_ok=True)
        return scratch

    def warm_up(self) -> None:
        """Load the preload modules here: the first wave of attempts pays for them, once."""
        import importlib

        for name in self.preload:
            importlib.import_module(name)
        self.warm = True
        release_free_memory()

    def plan(
        self, argv: list[str], env_delta: dict[str, str]
    ) -> tuple[str, list[str], types.CodeType | None]:
        """How to start ``argv`` (see :func:`plan`), with ``-c`` code compiled here, once."""
        if _STARTUP_VARS & env_delta.keys():
            return (*plan(list(argv), {**self.base_env, **env_delta}), None)
        key = tuple(argv)
        known = self.plans.get(key)
        if known is None:
            mode, args = plan(list(argv), self.base_env)
            code = None
            if mode == "c":
                # As a fresh interpreter compiles it (no __future__ flags from this module).
                # Code that does not compile, or compiles with a warning, is left to the
                # child, which reports it as python would.
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        code = compile(args[1], "<string>", "exec", dont_inherit=True)
                    except Exception:
                        pass
                if caught:
                    code = None
            if len(self.plans) >= 64:
                self.plans.clear()
            known = self.plans[key] = (mode, args, code)
        return known

    def become_child(
        self,
        w: int,
        scratch: str,
        cgroup: str | None,
        mode: str,
        args: list[str],
        compiled: types.CodeType | None,
        env_delta: dict[str, str],
    ) -> None:
        code = 127
        try:
            after_fork_in_child()
            os.setsid()
            if cgroup is not None:  # before anything runs that could fork
                try:
                    join_cgroup(cgroup)
                except OSError:
                    pass
            os.dup2(self.devnull, 0)
            os.dup2(w, 1)
            os.dup2(w, 2)
            os.closerange(3, 65536)
            if self.nofile_raised:
                resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
            if scratch:
                os.chdir(scratch)
            os.umask(_child_umask)
            if self.wake_r >= 0:  # exits are seen through SIGCHLD: not the child's business
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            if mode == "refused":  # the request could not even be planned
                os.write(2, f"CannotStartContainerError: {args[0]}\n".encode())
                os._exit(127)
            if mode == "exec":  # what this interpreter ignores stays ignored across exec
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
                try:
                    os.execvpe(args[0], args, {**self.base_env, **env_delta})
                except (OSError, ValueError) as exc:  # ValueError: a NUL byte in it
                    why = exc.strerror if isinstance(exc, OSError) else str(exc)
                    name = (args[0] if args else "").replace("\x00", "\\x00")
                    os.write(2, f"CannotStartContainerError: {name}: {why}\n".encode())
                    os._exit(127)
            # Signal dispositions are this interpreter's, as a fresh one has them.
            code = run_python(mode, args, compiled, env_delta, self.base_path)
        finally:
            os._exit(code)

    def pump(self, fd: int) -> bytes | None:
        """Move what a child wrote into its log; report it once it exited and the pipe is drained."""
        child = self.by_fd[fd]
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return None
            if not data:
                self.close_pipe(child)
                return self.report(child) if child.status is not None else None
            child.log.write(data, self.log_dirs)

    def close_pipe(self, child: Child) -> None:
        if child.fd < 0:
            return
        self.poll.unregister(child.fd)
        del self.by_fd[child.fd]
        os.close(child.fd)
        child.fd = -1
        child.log.close(self.log_dirs)

    def reap(self, child: Child, pidfd: int) -> bytes:
        """The child of ``pidfd`` exited: collect it; its "exited" message (or b"")."""
        self.poll.unregister(pidfd)
        os.close(pidfd)
        _, status, rusage = os.wait4(child.pid, 0)
        return self.collected(child, status, rusage)

    def reap_any(self) -> list[bytes]:
        """Collect every child that exited (after a SIGCHLD); their "exited" messages."""
        out = []
        while True:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self.children:
                out.append(self.collected(self.children[pid], status, rusage))
        return out

    def collected(self, child: Child, status: int, rusage: Any) -> bytes:
        child.status, child.rusage = status, rusage
        try:  # the container is gone: so is whatever it left behind
            os.killpg(child.pid, signal.SIGKILL)
        except OSError:
            pass
        if child.cgroup is not None:  # in its cgroup, whatever session it made for itself
            if populated(child.cgroup):
                kill_cgroup(child.cgroup)
                self.dead_cgroups.append(child.cgroup)
            else:
                self.free_cgroups.append(child.cgroup)
        if self.dead_cgroups:
            emptied = [c for c in self.dead_cgroups if not populated(c)]
            if emptied:
                self.free_cgroups.extend(emptied)
                self.dead_cgroups = [c for c in self.dead_cgroups if c not in emptied]
        if self.subreaper:
            self.kill_orphans()
        message = self.pump(child.fd) if child.fd >= 0 else None
        if child.fd >= 0:  # a straggler holds the pipe open: do not wait for it
            self.close_pipe(child)
        return message or self.report(child)

    def report(self, child: Child) -> bytes:
        if self.children.pop(child.pid, None) is None:
            return b""
        assert child.status is not None
        code = os.waitstatus_to_exitcode(child.status)
        if code < 0:
            code = 128 - code  # killed by a signal: 128 + signal number, as containers report it
        ru = child.rusage
        if child.scratch:
            try:
                empty = not os.listdir(child.scratch)
            except OSError:
                empty = False
            if empty:
                self.free_scratch.append(child.scratch)
            else:
                shutil.rmtree(child.scratch, ignore_errors=True)
        return encode(("exited", child.task_id, code, ru.ru_maxrss, ru.ru_utime + ru.ru_stime))

    def kill_orphans(self) -> None:
        """Kill what outlived its attempt's first process (handed to us, a subreaper) and reap it."""
        adopted = {
            pid
            for pid in set(self.own_children()) - self.children.keys() - self.orphans
            if session_of(pid) not in self.children  # not of an attempt still running
        }
        if adopted:
            kill_all(descendants(adopted))
            self.orphans |= adopted
        for pid in list(self.orphans):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.orphans.discard(pid)

    @staticmethod
    def own_children() -> list[int]:
        try:  # one read where the kernel lists a thread's children
            with open(f"/proc/self/task/{os.getpid()}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return children_by_parent().get(os.getpid(), [])

    def shutdown(self) -> None:
        for scratch in self.free_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        if self.cgroup is not None:
            kill_cgroup(self.cgroup)  # every attempt's cgroup is under it
        else:
            kill_all(descendants(set(self.children)))
        for pid in list(self.children):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def pidfds_work() -> bool:
    """Whether this kernel has pidfd_open (Linux 5.3+)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def load_libc() -> Any:
    """libc (ctypes), where forking without os.fork's at-fork hooks is known to be safe; else None.

    os.fork runs the interpreter's after-fork work and every ``os.register_at_fork``
    hook in the child. In this single-threaded process, with no lock held, the only
    ones that change anything are random's reseed and threading's record of the main
    thread's native id (:func:`after_fork_in_child` does those two); the rest rebuild
    locks nobody holds and thread lists with one entry, and cost the child a copied
    page for every object they touch: about a fifth of a short attempt's cost.
    """
    if (
        sys.implementation.name != "cpython"
        or not sys.platform.startswith("linux")
        or not (3, 11) <= sys.version_info[:2] <= (3, 13)
        or not getattr(sys, "_is_gil_enabled", lambda: True)()
        or not hasattr(threading.Thread, "_set_native_id")
    ):
        return None
    try:
        if len(os.listdir("/proc/self/task")) != 1:
            return None
        import ctypes

        libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL stays held, as os.fork has it
        libc.fork.restype = ctypes.c_int
    except (ImportError, OSError, AttributeError):  # no /proc, no ctypes, no fork symbol
        return None
    return libc


_libc: Any = None  # set by main()
_child_umask = 0o022  # the umask the fork server was started with: its children get it back


def fork() -> int:
    if _libc is None:
        return os.fork()
    pid: int = _libc.fork()
    if pid < 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return pid


def after_fork_in_child() -> None:
    """What os.fork's hooks would do that matters here (see :func:`load_libc`)."""
    if _libc is None:
        return
    random = sys.modules.get("random")
    if random is not None:
        random._inst.seed()  # type: ignore[attr-defined]
    threading.main_thread()._set_native_id()  # type: ignore[attr-defined]


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system: fewer pages for every fork to map."""
    trim = getattr(_libc, "malloc_trim", None)  # glibc's; musl has none
    if trim is not None:
        trim(0)


def main() -> None:
    """``python -m batchbook.runtime.forkserver <scratch root> [--preload M,...] [--sigchld]``
    (--sigchld: see exits through SIGCHLD even where pidfds work, as on kernels before 5.3)."""
    scratch_root, options = sys.argv[1], sys.argv[2:]
    preload: tuple[str, ...] = ()
    if "--preload" in options:
        preload = tuple(filter(None, options[options.index("--preload") + 1].split(",")))
    cap_mib = DEFAULT_CAP_MIB
    if "--max-log-stream-mib" in options:
        cap_mib = int(options[options.index("--max-log-stream-mib") + 1])
    cgroup = options[options.index("--cgroup") + 1] if "--cgroup" in options else None
    ctrl_in, ctrl_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    atexit._clear()
    global _libc, _child_umask
    _child_umask = os.umask(0o077)  # logs and scratch folders are the user's only; jobs get theirs
    _libc = load_libc()
    server = ForkServer(
        ctrl_in,
        ctrl_out,
        scratch_root,
        pidfds="--sigchld" not in options,
        preload=preload,
        log_cap=cap_mib << 20,
        cgroup=cgroup,
    )
    server.serve()


if __name__ == "__main__":
    main()
