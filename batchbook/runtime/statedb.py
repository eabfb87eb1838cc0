"""SQLite persistence for the engine: every object, job (with its attempts) and status event."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchbook.engine import Changes
from batchbook.errors import StorageFull

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, parent TEXT, status TEXT NOT NULL, data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_parent ON jobs (parent);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, job_id TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT
);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA_VERSION = "1"
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def is_disk_full(e: sqlite3.Error) -> bool:
    return getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "is full" in str(e)


class StateDB:
    """One SQLite database in WAL mode; each save is one transaction."""

    def __init__(self, path: Path, readonly: bool = False):
        self.path = path
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            return
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # SQLite's -wal and -shm copy it
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes (kill -9)
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))

    def load(self) -> tuple[list[tuple[str, dict[str, Any]]], Iterator[tuple[str, dict[str, Any]]]]:
        order = {"ce": 0, "queue": 1, "jobdef": 2}
        objects = sorted(
            (
                (kind, json.loads(data))
                for kind, data in self.db.execute("SELECT kind, data FROM objects")
            ),
            key=lambda item: order.get(item[0], 9),
        )
        rows = self.db.execute("SELECT id, data FROM jobs ORDER BY parent IS NOT NULL")
        return objects, ((job_id, json.loads(data)) for job_id, data in rows)

    def save(self, changes: Changes) -> None:
        if not (changes.objects or changes.jobs or changes.events):
            return
        db = self.db
        db.execute("BEGIN")
        try:
            for kind, key, data in changes.objects:
                if data is None:
                    db.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, key))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO objects VALUES (?, ?, ?)", (kind, key, _dumps(data))
                    )
            db.executemany(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?)",
                [
                    (j.id, j.parent.id if j.parent else None, j.status, _dumps(j.to_record()))
                    for j in changes.jobs
                ],
            )
            db.executemany(
                "INSERT INTO events (at, job_id, status, reason) VALUES (?, ?, ?, ?)",
                changes.events,
            )
            db.execute("COMMIT")
        except BaseException as e:
            if db.in_transaction:  # SQLite rolls back by itself on a full disk
                db.execute("ROLLBACK")
            if isinstance(e, sqlite3.OperationalError) and is_disk_full(e):
                raise StorageFull(
                    f"state dir {self.path.parent}: the disk is full ({e}); the change is kept "
                    "in memory and saved once there is room again"
                ) from None
            raise

    def events(self, job_id: str) -> list[tuple[int, str, str | None]]:
        return self.db.execute(
            "SELECT at, status, reason FROM events WHERE job_id = ? ORDER BY seq", (job_id,)
        ).fetchall()

    def close(self) -> None:
        self.db.close()
