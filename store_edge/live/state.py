"""The worker's durable state in one SQLite file: the input journal and the cart outbox.

The journal keeps every input message as it came off the broker (with the time it came), so a worker
killed at any instant rebuilds its open carts by replaying it into a fresh engine. Every few minutes
the worker saves a snapshot of its whole state (engine, deduplicator, merge buffer) together with the
last journal row it includes, and the rows up to there are deleted in the same transaction: a restart
loads the snapshot and replays only what came after it. The outbox keeps every finished cart until
the cloud has acknowledged it; it is keyed by visit, so a cart is sent (and applied by the cloud) once
however often the worker restarts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ns INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    journal_id INTEGER NOT NULL,
    software TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    visit_id TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    created_ns INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_ns INTEGER NOT NULL,
    delivered_ns INTEGER,
    last_error TEXT
);
"""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed row survives a killed process
    conn.executescript(SCHEMA)
    return conn


@dataclass(frozen=True)
class Snapshot:
    journal_id: int
    """The last journal row the state includes."""
    software: str
    created_ns: int
    state: bytes


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = _connect(path)
        self._lock = threading.Lock()  # the journal thread appends, the worker thread snapshots

    def append(self, rows: list[tuple[int, str, bytes]]) -> list[int]:
        """(received ns, topic, payload) rows, committed together. Returns their row ids."""
        if not rows:
            return []
        with self._lock, self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT INTO journal (ts_ns, topic, payload) VALUES (?, ?, ?)", rows)
            # one writer, one transaction: the rows' ids are consecutive, ending at the last one inserted
            last = int(self.conn.execute("SELECT last_insert_rowid()").fetchone()[0])
        return list(range(last - len(rows) + 1, last + 1))

    def replay(self, after_id: int = 0) -> Iterator[tuple[int, str, bytes]]:
        """Rows after `after_id`, oldest first. For recovery, before the journal thread starts appending."""
        for row_id, topic, payload in self.conn.execute(
            "SELECT id, topic, payload FROM journal WHERE id > ? ORDER BY id", (after_id,)
        ):
            yield row_id, topic, bytes(payload)

    def save_snapshot(self, journal_id: int, software: str, state: bytes, now_ns: int) -> int:
        """Keep `state` (which includes every row up to `journal_id`) and delete those rows, atomically.
        Returns how many rows went."""
        with self._lock, self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute(
                "INSERT OR REPLACE INTO snapshot (id, journal_id, software, created_ns, state) VALUES (1, ?, ?, ?, ?)",
                (journal_id, software, now_ns, state),
            )
            return self.conn.execute("DELETE FROM journal WHERE id <= ?", (journal_id,)).rowcount

    def snapshot(self) -> Snapshot | None:
        with self._lock:
            row = self.conn.execute("SELECT journal_id, software, created_ns, state FROM snapshot").fetchone()
        return Snapshot(row[0], row[1], row[2], bytes(row[3])) if row else None

    def rows(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT count(*) FROM journal").fetchone()[0])


@dataclass(frozen=True)
class OutboxItem:
    visit_id: str
    payload: bytes
    attempts: int


class Outbox:
    def __init__(self, path: Path) -> None:
        self.conn = _connect(path)
        self._lock = threading.Lock()

    def put(self, visit_id: str, payload: bytes) -> bool:
        """Queue a finished cart; a visit already queued (or sent) is not queued again."""
        now = time.time_ns()
        with self._lock:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO outbox (visit_id, payload, created_ns, next_try_ns) VALUES (?, ?, ?, ?)",
                (visit_id, payload, now, now),
            )
        return cur.rowcount == 1

    def due(self, now_ns: int, limit: int = 50) -> list[OutboxItem]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT visit_id, payload, attempts FROM outbox WHERE delivered_ns IS NULL AND next_try_ns <= ? "
                "ORDER BY created_ns LIMIT ?",
                (now_ns, limit),
            ).fetchall()
        return [OutboxItem(v, bytes(p), a) for v, p, a in rows]

    def delivered(self, visit_id: str, now_ns: int) -> None:
        with self._lock:
            self.conn.execute(
                "UPDATE outbox SET delivered_ns = ?, last_error = NULL WHERE visit_id = ?", (now_ns, visit_id)
            )

    def failed(self, visit_id: str, error: str, retry_at_ns: int) -> None:
        with self._lock:
            self.conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_try_ns = ?, last_error = ? WHERE visit_id = ?",
                (retry_at_ns, error, visit_id),
            )

    def depth(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT count(*) FROM outbox WHERE delivered_ns IS NULL").fetchone()[0])
