"""The local backend: the local engine's service (found, or started detached, through
discovery) as the Batch endpoint, its long-poll for news, and a store folder in its state
dir unless another store is named."""

from __future__ import annotations

import os
from typing import Any

from batchbook.errors import ServiceUnavailable
from batchbook.functions.backend import DEFAULT_QUEUE, Backend, create_queue
from batchbook.functions.objects import FolderStore, ObjectStore, open_store

# A service on loopback that refuses a connection is down, not busy: a few tries, then the
# backend finds (or starts) it again; throttling (batchbook serve --throttle) backs off alike.
RETRIES = {"retries": {"mode": "adaptive", "max_attempts": 4}}


class LocalBackend(Backend):
    def __init__(self, service: Any, store: ObjectStore, queue: str = DEFAULT_QUEUE):
        super().__init__(
            service.client("batch", **RETRIES),
            service.client("logs", **RETRIES),
            store,
            queue,
            self._reconnect,
            lambda: self.service.client("scheduler", **RETRIES),
        )
        self.service = service
        self._interpreters: dict[frozenset[str], dict[str, Any]] = {}

    @classmethod
    def open(
        cls,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        store: str | None = None,
        region: str | None = None,
        queue: str | None = None,
        profile: str | None = None,
    ) -> LocalBackend:
        """The state dir's service (started if need be), ready to submit to: its clients
        built, its default queue and the runner's job definition made."""
        from batchbook.server.discovery import ensure_service

        service = ensure_service(state_dir)
        if region:
            service = service.in_region(region)
        objects = (
            open_store(store, profile=profile)
            if store
            else FolderStore(service.state_dir / "store")
        )
        backend = cls(service, objects, queue or DEFAULT_QUEUE)
        backend.ensure_queue(None)  # the first map pays no connection set-up
        backend.job_definition()
        return backend

    def missing_queue(self, name: str) -> None:
        if name != DEFAULT_QUEUE:
            super().missing_queue(name)
        create_queue(self.batch, DEFAULT_QUEUE, os.cpu_count() or 1)  # all of this machine

    def wait_for_change(
        self,
        after: int,
        timeout: float,
        until_final: list[str] | None = None,
        finished: bool = False,
    ) -> int:
        try:
            return int(self.service.wait_for_change(after, timeout, until_final, finished))
        except ServiceUnavailable:  # stopped, or crashed: find it (or start it) once more
            self._reconnect("batch")
            return int(self.service.wait_for_change(0, timeout, until_final, finished))

    def schedule_firings(
        self, group: str, name: str, catch_up: bool | None = None
    ) -> dict[str, Any] | None:
        try:
            return self.service.schedule_firings(name, group, catch_up)
        except ServiceUnavailable:
            self._reconnect("batch")
            return self.service.schedule_firings(name, group, catch_up)

    def _reconnect(self, service_name: str) -> Any:
        """The service of this state dir again (found, or started: it may have a new port or
        be gone); a new client of ``service_name`` on it."""
        from batchbook.server.discovery import ensure_service

        region = self.service.region
        self.service = ensure_service(self.service.state_dir).in_region(region)
        return self.service.client(service_name, **RETRIES)

    def log_token(self, line: int) -> str | None:
        return f"f/{line}"  # the local service's tokens are line numbers (cloudwatch_logs.py)

    def worker_interpreter(self, modules: list[str]) -> dict[str, Any]:
        key = frozenset(modules)
        if key not in self._interpreters:  # one call per set of modules
            self._interpreters[key] = self.service.interpreter(modules)
        return self._interpreters[key]

    def __repr__(self) -> str:
        return f"<batchbook local backend {self.service.url} on {self.service.state_dir}, store {self.store.url}>"
