"""One watcher thread per backend: it completes pending futures as their jobs finish, and
refreshes the snapshots of watched runs at most twice a second, for every handle and view
of them, whatever their number. Idle, it blocks (no polling); watching, it waits on the
backend's "something may have changed" between rounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from batchbook.functions.backend import Backend
from batchbook.functions.snapshot import Snapshot

ROUND_SECONDS = 0.5  # watched runs are refreshed at most this often


class Pending(Protocol):
    """A future whose job the watcher follows (batchbook.Job)."""

    job_id: str

    def settle(self, detail: dict[str, Any]) -> bool:
        """Move on to what DescribeJobs says; True once the future is done."""
        ...

    def fail(self, error: BaseException) -> None: ...


class Watchable(Protocol):
    """A run's handle (a MapJob), or a view of the backend (the dashboard): an id and a way
    to take a fresh snapshot."""

    @property
    def id(self) -> str: ...

    def snapshot(self, max_age: float = ...) -> Any:
        """A Snapshot, or anything with ``final`` (True once it cannot change)."""
        ...


class _Watched:
    def __init__(self, lead: Watchable):
        self.lead = lead  # the handle whose snapshots every watcher of the run gets
        self.callbacks: list[Callable[[Any], None]] = []
        self.latest: Any = None


class Watcher(threading.Thread):
    def __init__(self, backend: Backend):
        super().__init__(name="batchbook-watcher", daemon=True)
        self.backend = backend
        self._futures: dict[str, Pending] = {}
        self._runs: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.rounds = 0  # snapshot rounds so far

    # ------------------------------------------------------------ what to watch
    def add_future(self, future: Pending) -> None:
        with self._lock:
            self._futures[future.job_id] = future
        self._wake.set()

    def watch(self, job: Watchable, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback`` with each new snapshot of ``job``'s run (the last one final);
        returns the function that stops it."""
        with self._lock:
            watched = self._runs.setdefault(job.id, _Watched(job))
            watched.callbacks.append(callback)
        self._wake.set()

        def unwatch() -> None:
            with self._lock:
                if callback in watched.callbacks:
                    watched.callbacks.remove(callback)
                if not watched.callbacks and self._runs.get(job.id) is watched:
                    del self._runs[job.id]

        return unwatch

    def latest(self, run_id: str) -> Any:
        """The newest snapshot of a watched run (None: not watched, or none yet)."""
        with self._lock:
            watched = self._runs.get(run_id)
            return watched.latest if watched else None

    # ------------------------------------------------------------ the loop
    def run(self) -> None:
        version, last_round, waited = 0, 0.0, False
        try:
            while True:
                self._wake.clear()
                with self._lock:
                    futures, runs = dict(self._futures), list(self._runs.values())
                if futures and waited:  # news may have come: a new future waits first
                    self._settle(futures)
                now = time.monotonic()
                if runs and now - last_round >= ROUND_SECONDS:
                    self._refresh(runs)
                    last_round = now
                with self._lock:
                    futures_left, watching = bool(self._futures), bool(self._runs)
                next_round = max(0.0, ROUND_SECONDS - (time.monotonic() - last_round))
                waited = True
                if futures_left:  # wake as soon as one of their jobs is final
                    with self._lock:
                        ids = list(self._futures)[:1000]
                    timeout = min(next_round, 10) if watching else 10
                    version = self.backend.wait_for_change(version, timeout, until_final=ids)
                elif watching:  # at most a round per ROUND_SECONDS, then on the next change
                    if self._wake.wait(next_round):
                        waited = False
                        continue
                    version = self.backend.wait_for_change(version, 10)
                else:
                    self._wake.wait()  # idle: until something is added
                    waited = False
        except Exception as e:  # the service is gone: nothing pending can finish now
            with self._lock:
                futures, self._futures, self._runs = dict(self._futures), {}, {}
            for future in futures.values():
                future.fail(e)

    def _settle(self, futures: dict[str, Pending]) -> None:
        for detail in self.backend.describe(list(futures)):
            if futures[detail["jobId"]].settle(detail):
                with self._lock:
                    self._futures.pop(detail["jobId"], None)

    def _refresh(self, runs: list[_Watched]) -> None:
        self.rounds += 1
        for watched in runs:
            try:
                snap = watched.lead.snapshot(max_age=0)
            except Exception:  # this one's look failed (throttled, deleted...): the next round
                continue  # tries again; the other runs and views go on meanwhile
            with self._lock:
                watched.latest = snap
                callbacks = list(watched.callbacks)
                if snap.final and self._runs.get(watched.lead.id) is watched:
                    del self._runs[watched.lead.id]  # nothing more will change
            for callback in callbacks:
                try:
                    callback(snap)
                except Exception:  # a broken view must not stop the others (nor print here)
                    with self._lock:
                        if callback in watched.callbacks:
                            watched.callbacks.remove(callback)


_watchers: dict[int, Watcher] = {}
_watchers_lock = threading.Lock()


def watcher(backend: Backend) -> Watcher:
    """The backend's watcher (started on first use; again if it ended)."""
    with _watchers_lock:
        found = _watchers.get(id(backend))
        if found is None or not found.is_alive():
            found = _watchers[id(backend)] = Watcher(backend)
            found.start()
        return found


def shared_snapshot(backend: Backend, run_id: str) -> Snapshot | None:
    """The newest snapshot the backend's watcher took of a run it watches (None: no watcher,
    or it does not watch that run): what every handle of the run can show."""
    found = _watchers.get(id(backend))
    latest = found.latest(run_id) if found is not None else None
    return latest if isinstance(latest, Snapshot) else None
