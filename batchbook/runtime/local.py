"""LocalBatch: the engine driven for real — SQLite, the fork server, and one scheduler loop.

Every Batch operation is a method taking the request as keyword arguments in
the API's own camelCase and returning the response dict, as boto3 does::

    lb = LocalBatch("~/.batchbook/local")
    lb.submit_job(jobName="x", jobQueue="q", jobDefinition="jd")

Requests run on the caller's thread under one lock and are committed to SQLite
before they return; the scheduler loop (one thread) wakes on a request, on a
message from the fork server, or on the next timer, never on a sleep.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import selectors
import signal
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from batchbook.engine import (
    Changes,
    Engine,
    EngineConfig,
    Host,
    StartAttempt,
    StopAttempt,
    WriteNotice,
)
from batchbook.engine.spot import notice_path
from batchbook.errors import ClientError, StateDirInUse, StorageFull
from batchbook.home import default_state_dir, private_dir, private_opener
from batchbook.runtime.launcher import Launcher
from batchbook.runtime.logs import append_event, read_events
from batchbook.runtime.proc import group_rss, kill_stale_group, signal_group
from batchbook.runtime.secrets import resolve as resolve_secrets
from batchbook.runtime.statedb import StateDB
from batchbook.vocabulary import HOST_LOST, OOM_LOG_LINE

OPERATIONS = (
    "CancelJob",
    "CreateComputeEnvironment",
    "CreateJobQueue",
    "DeleteComputeEnvironment",
    "DeleteJobQueue",
    "DeregisterJobDefinition",
    "DescribeComputeEnvironments",
    "DescribeJobDefinitions",
    "DescribeJobQueues",
    "DescribeJobs",
    "ListJobs",
    "ListTagsForResource",
    "RegisterJobDefinition",
    "SubmitJob",
    "TagResource",
    "TerminateJob",
    "UntagResource",
    "UpdateComputeEnvironment",
    "UpdateJobQueue",
)
FIRINGS = "BatchbookScheduleFirings"  # batchbook's own; read-only, unless it sets CatchUp
# EventBridge Scheduler's, answered by the engine's schedules (and batchbook's own listing
# of what a schedule fired and missed)
SCHEDULER_OPERATIONS = (
    FIRINGS,
    "CreateSchedule",
    "CreateScheduleGroup",
    "DeleteSchedule",
    "DeleteScheduleGroup",
    "GetSchedule",
    "GetScheduleGroup",
    "ListScheduleGroups",
    "ListSchedules",
    "UpdateSchedule",
)
MIN_FREE_BYTES = 1 << 20  # below this, on the state dir's disk, changes are refused (StorageFull)
RETRY_SAVE_MS = 1000  # how often changes a full disk kept are tried again
READ_ONLY = frozenset(
    op for op in OPERATIONS + SCHEDULER_OPERATIONS if op.startswith(("Describe", "List", "Get"))
)
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class LocalBatch:
    """An AWS-Batch-compatible engine on this machine, persisted in ``state_dir``."""

    def __init__(
        self,
        state_dir: str | Path | None = None,
        *,
        min_timeout_seconds: int = 60,
        min_state_limit_seconds: int = 600,
        kill_grace_seconds: float = 5.0,
        memory_check_seconds: float = 0.1,
        cpus: int | None = None,
        memory_mib: int | None = None,
        preload: tuple[str, ...] = (),
        max_log_stream_mib: int = 1024,
        clock_offset_seconds: float = 0,
    ):
        """``min_timeout_seconds``, ``min_state_limit_seconds``: AWS's floors (60, 600) unless
        lowered for tests; ``preload``: modules the fork server loads before the first ``python -m`` attempt;
        ``max_log_stream_mib``: what an attempt's log stream may hold (the rest is dropped);
        ``clock_offset_seconds``: how far ahead of this machine's clock the engine's runs."""
        self.state_dir = Path(state_dir or default_state_dir()).expanduser().resolve()
        private_dir(self.state_dir)  # 0700, this user's: refused otherwise
        self._lock_file = _lock_state_dir(self.state_dir)
        self.kill_grace_ms = int(kill_grace_seconds * 1000)
        self.memory_check_ms = int(memory_check_seconds * 1000)
        host = Host(
            cpus=cpus or os.cpu_count() or 1,
            memory_mib=memory_mib or psutil.virtual_memory().total // (1 << 20),
        )
        self._notices = private_dir(self.state_dir / "spot")  # a spot rehearsal's notices
        for stale in self._notices.iterdir():  # of attempts the last engine ran: all lost
            stale.unlink(missing_ok=True)
        config = EngineConfig(min_timeout_seconds, min_state_limit_seconds, str(self._notices))
        offset = self._clock_offset_ms = int(clock_offset_seconds * 1000)
        self.engine = Engine((lambda: now_ms() + offset) if offset else now_ms, host, config)
        self.db = StateDB(self.state_dir / "state.db")
        self.engine.load(*self.db.load())
        self.launcher = Launcher(self.state_dir, preload, max_log_stream_mib)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        # task id -> (pid, memory limit in bytes, log stream) of each attempt in flight
        self._pids: dict[str, tuple[int, int, str]] = {}
        self._oom: dict[str, int] = {}  # task id -> bytes seen when it was killed for memory
        self._kill_at: dict[str, tuple[int, int]] = {}  # task id -> (epoch ms, pid) for SIGKILL
        self._next_memory_check = 0
        self.version = 0  # grows with every committed change (see wait_for_change)
        self.finished = 0  # grows with every commit in which some job became final
        self._unsaved: Changes | None = None  # changes a full disk kept from being saved
        self._closing = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._recover()
        self.launcher.start()
        self._thread = threading.Thread(target=self._loop, name="batchbook-scheduler", daemon=True)
        self._thread.start()
        self._wake()  # a reopened engine has work at once: submitted jobs, retried attempts

    # ------------------------------------------------------------ operations
    def call(
        self, operation: str, request: dict[str, Any] | None = None, region: str | None = None
    ) -> dict[str, Any]:
        """Run one Batch (or EventBridge Scheduler) operation by its API name (``SubmitJob``,
        ``CreateSchedule``) with a request dict."""
        return json.loads(self.call_json(operation, request, region))  # copies, never engine state

    def call_json(
        self, operation: str, request: dict[str, Any] | None = None, region: str | None = None
    ) -> bytes:
        """Like :meth:`call`, but the response as JSON bytes, serialized under the lock."""
        if operation in OPERATIONS:
            answers: Any = self.engine
        elif operation in SCHEDULER_OPERATIONS:
            answers = self.engine.schedules
        else:
            raise ClientError(
                f"operation {operation!r} is not supported by the local engine; "
                f"supported: {', '.join(OPERATIONS + SCHEDULER_OPERATIONS)}"
            )
        writes = operation not in READ_ONLY and not (
            operation == FIRINGS and "CatchUp" not in (request or {})
        )
        with self._lock:
            if writes:
                self._check_room()
            self.engine.region = region or self.engine.host.region
            result = getattr(answers, snake(operation))(request or {})
            if writes:
                self._commit()
                self._wake()
            return _dumps(result).encode()

    def wait(self, job_ids: Iterable[str], timeout: float | None = None) -> dict[str, str]:
        """Block until every job is SUCCEEDED or FAILED (or the timeout); return their statuses."""
        ids = list(job_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                statuses = {
                    i: self.engine.jobs[i].status if i in self.engine.jobs else "UNKNOWN"
                    for i in ids
                }
                if all(s in ("SUCCEEDED", "FAILED", "UNKNOWN") for s in statuses.values()):
                    return statuses
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return statuses
                self._changed.wait(remaining)

    def wait_for_change(
        self, after: int, timeout: float, until_final: Iterable[str] = (), finished: bool = False
    ) -> int:
        """Block until the state version passes ``after`` (or the timeout); return the version.

        The version grows with every committed change, so a client that saw version v
        learns of the next change at once, without polling. With ``until_final`` job ids,
        only a change that leaves one of those jobs final (or unknown) counts: a waiter
        for a whole array wakes once, not at every child's step. With ``finished``,
        ``after`` and the result count the commits in which some job became final.
        """
        deadline = time.monotonic() + timeout
        watched = list(until_final)

        def satisfied() -> bool:
            if (self.finished if finished else self.version) <= after:
                return False
            jobs = self.engine.jobs
            return not watched or any(i not in jobs or jobs[i].final for i in watched)

        with self._changed:
            while not satisfied():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    break
                self._changed.wait(remaining)
            return self.finished if finished else self.version

    def _commit(self) -> None:
        """Persist what changed since the last commit and tell the waiters (lock held).

        On a full disk the changes are kept, with any kept before, and StorageFull raised;
        the scheduler loop saves them once there is room again (see _check_room)."""
        changes = self.engine.take_changes()
        if self._unsaved is not None:
            changes = self._unsaved.then(changes)
        if not changes:
            return
        try:
            self.db.save(changes)
        except StorageFull:
            self._unsaved = changes
            raise
        self._unsaved = None
        self.version += 1
        if any(job.final for job in changes.jobs):
            self.finished += 1
        self._changed.notify_all()

    def _check_room(self) -> None:
        """StorageFull unless the state dir's disk has room for a change (and the changes
        kept while it had none are saved): a request is refused before it changes anything."""
        if self._unsaved is not None:
            self._commit()
        free = os.statvfs(self.state_dir)
        if free.f_bavail * free.f_frsize < MIN_FREE_BYTES:
            raise StorageFull(
                f"state dir {self.state_dir}: the disk is full ({free.f_bavail * free.f_frsize} "
                "bytes free); nothing new is accepted until there is room: free some space"
            )

    def log_events(
        self, log_stream: str, start: int = 0, limit: int = 10_000
    ) -> list[tuple[int, str]]:
        """Events (epoch ms, message) of one attempt's log stream, from line ``start``."""
        return read_events(self.log_path(log_stream), start, limit)

    def log_path(self, log_stream: str) -> Path:
        """The file of a log stream (it exists once the attempt wrote its first line)."""
        return self.state_dir / "logs" / log_stream

    def log_streams(self) -> list[tuple[str, int]]:
        """Every attempt's log stream with its creation time (epoch ms), oldest job first."""
        with self._lock:
            out: list[tuple[str, int]] = []
            for job in self.engine.jobs.values():
                out.extend(
                    (a["container"]["logStreamName"], a["startedAt"])
                    for a in job.attempts
                    if a["container"].get("logStreamName")
                )
                if job.task is not None:
                    out.append((job.task.log_stream, job.task.started_at or job.created_at))
            return out

    def attempts_usage(self, job_id: str) -> list[dict[str, Any]]:
        """Per attempt: peak memory (KiB) and CPU seconds, as recorded from the process."""
        with self._lock:
            return [dict(a.get("usage", {})) for a in self.engine.jobs[job_id].attempts]

    def why(self, job_id: str) -> str:
        with self._lock:
            return self.engine.why_not_running(job_id)

    def close(self) -> None:
        """Stop the loop and the fork server. Running attempts are killed and go back to their
        queues as not started: the next engine on this state dir runs them again."""
        if self._closing:
            return
        self._closing = True
        self._wake()
        with self._changed:
            self._changed.notify_all()  # wait_for_change callers return now
        self._thread.join(timeout=10)
        with self._lock:  # what was running goes back to the queue, its attempt not spent
            for _, task in self.engine.active_tasks():
                self.engine.attempt_requeued(task.task_id)
            with contextlib.suppress(StorageFull):  # then the next engine finds them lost
                self._commit()
        self.launcher.stop()
        with self._lock:
            self.db.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._lock_file.close()

    def __enter__(self) -> LocalBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ the loop
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # already pending

    def _recover(self) -> None:
        """Attempts that were in flight when the last engine died are lost: kill leftovers,
        retry per strategy. Schedules' firings missed meanwhile are listed (and caught up)
        before the first request is answered."""
        for _, task in self.engine.active_tasks():
            kill_stale_group(task.pid, task.pid_start)
            self.engine.attempt_lost(task.task_id, HOST_LOST)
        self.engine.schedules.fire_due(self.engine.clock(), self.engine.submit_job)
        self.db.save(self.engine.take_changes())

    def _timeout(self) -> float | None:
        deadlines = [at for at, _ in self._kill_at.values()]
        if self._unsaved is not None:  # a full disk: try again every RETRY_SAVE_MS
            deadlines.append(now_ms() + RETRY_SAVE_MS)
        if self._pids:
            deadlines.append(self._next_memory_check)
        engine_deadline = self.engine.next_deadline()
        if engine_deadline is not None:  # on the engine's clock
            deadlines.append(engine_deadline - self._clock_offset_ms)
        if not deadlines:
            return None
        return max(0.0, (min(deadlines) - now_ms()) / 1000)

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        sel.register(self.launcher.fileno(), selectors.EVENT_READ, "fork server")
        writing = False
        while not self._closing:
            events = sel.select(self._timeout())
            with self._lock:
                if self._closing:
                    break
                for key, _ in events:
                    if key.data == "wake":
                        _drain(self._wake_r)
                    elif key.data == "fork server" and not self._on_fork_server():
                        sel.unregister(key.fd)
                        if writing:
                            sel.unregister(self.launcher.write_fileno())
                            writing = False
                        self._restart_fork_server()
                        sel.register(self.launcher.fileno(), selectors.EVENT_READ, "fork server")
                self._tick()
                for action in self.engine.step():
                    if isinstance(action, StartAttempt):
                        if action.secrets:  # resolved here, into the process's environment only
                            values, missing = resolve_secrets(action.secrets)
                            if missing:
                                self.engine.attempt_lost(action.task_id, missing)
                                continue
                            action = dataclasses.replace(action, env={**action.env, **values})
                        self._pids[action.task_id] = (0, action.memory_mib << 20, action.log_stream)
                        self.launcher.launch(action)
                    elif isinstance(action, StopAttempt):
                        signal_group(action.pid, signal.SIGTERM)
                        grace = self.kill_grace_ms if action.grace_ms is None else action.grace_ms
                        self._kill_at[action.task_id] = (now_ms() + grace, action.pid)
                    elif isinstance(action, WriteNotice):
                        write_notice(action.path, action.text)
                # Starts go out before the commit, so the fork server works while SQLite does.
                # Safe: if this process dies before the commit, the fork server (its stdin
                # closed) kills every attempt it started, and the reopened engine retries them.
                pending = self.launcher.flush()
                with contextlib.suppress(StorageFull):  # kept, and saved on a later round
                    self._commit()
                if pending != writing:
                    if pending:
                        sel.register(self.launcher.write_fileno(), selectors.EVENT_WRITE, "write")
                    else:
                        sel.unregister(self.launcher.write_fileno())
                    writing = pending
        sel.close()

    def _on_fork_server(self) -> bool:
        messages = self.launcher.read()
        if messages is None:
            return False
        for msg in messages:
            if msg[0] == "started":
                _, task_id, pid, ticks, at = msg
                if task_id in self._pids:
                    self._pids[task_id] = (pid, *self._pids[task_id][1:])
                self.engine.attempt_started(task_id, pid, ticks, at)
            elif msg[0] == "exited":
                _, task_id, code, peak_kib, cpu = msg
                _, limit, stream = self._pids.pop(task_id, (0, 0, ""))
                self._kill_at.pop(task_id, None)
                used = max(self._oom.pop(task_id, 0), peak_kib * 1024)
                oom = limit > 0 and used > limit
                if oom and stream:  # what AWS's reason leaves out, where the user looks
                    line = OOM_LOG_LINE.format(used=-(-used >> 20), limit=limit >> 20)
                    with contextlib.suppress(OSError):  # a full disk: the reason still says it
                        append_event(self.log_path(stream), now_ms(), line)
                self.engine.attempt_exited(
                    task_id, code, oom=oom, peak_memory_kib=peak_kib, cpu_seconds=round(cpu, 4)
                )
                with contextlib.suppress(OSError):  # a spot rehearsal's notice: read or not, done
                    os.unlink(notice_path(str(self._notices), task_id))
        return True

    def _restart_fork_server(self) -> None:
        """The fork server died: kill what its attempts left running (all of it, before
        they are retried, so no input runs twice at once), fail them, start a new one."""
        self.launcher.kill_attempts({pid for pid, _, _ in self._pids.values() if pid})
        for task_id in list(self._pids):
            self.engine.attempt_lost(task_id, HOST_LOST)
        self._pids.clear()
        self._kill_at.clear()
        self.launcher.stop()
        self.launcher.start()

    def _tick(self) -> None:
        now = now_ms()
        for task_id, (at, pid) in list(self._kill_at.items()):
            if at <= now:
                signal_group(pid, signal.SIGKILL)
                del self._kill_at[task_id]
        if self._pids and now >= self._next_memory_check:
            self._next_memory_check = now + self.memory_check_ms
            limits = {
                pid: (task_id, limit)
                for task_id, (pid, limit, _) in self._pids.items()
                if pid and limit
            }
            for pid, rss in group_rss(set(limits)).items():
                task_id, limit = limits[pid]
                if rss > limit and task_id not in self._oom:
                    self._oom[task_id] = rss
                    signal_group(pid, signal.SIGKILL)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _lock_state_dir(state_dir: Path) -> Any:
    # held for the engine's lifetime
    lock = open(state_dir / "engine.lock", "a+", opener=private_opener)  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "another process"
        lock.close()
        raise StateDirInUse(f"state dir {state_dir} is in use by engine pid {owner}") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _install_operations() -> None:
    for operation in OPERATIONS + SCHEDULER_OPERATIONS:

        def method(self: LocalBatch, _op: str = operation, **request: Any) -> dict[str, Any]:
            return self.call(_op, request)

        method.__name__ = snake(operation)
        method.__doc__ = f"The ``{operation}`` operation (request as keyword arguments)."
        setattr(LocalBatch, snake(operation), method)


_install_operations()


def write_notice(path: str, text: str) -> None:
    """A spot rehearsal's instance-action notice, whole or not at all (the job polls it)."""
    partial = f"{path}.part"
    try:
        with open(partial, "w") as f:
            f.write(text)
        os.replace(partial, path)
    except OSError:  # a full disk: the attempt meets its interruption without the warning
        with contextlib.suppress(OSError):
            os.unlink(partial)
