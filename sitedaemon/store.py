"""The durable local queue: one SQLite file (WAL mode) in the state folder.

Each version of a file (path + sha256) is one row, moving through

    pending -> registered -> done          (upload needed, then uploaded)
    pending -> done                        (--metadata-only, or the orchestrator has the bytes)
    pending | registered -> failed         (a permanent 4xx; kept, not retried)
    pending | registered -> superseded     (the file changed before it was delivered)

A row is committed before anything is sent, and its state changes only after the orchestrator
answered, so a crash at any point leaves work that resumes on restart. Registration is
idempotent on site + path + sha256, so the one request that may be re-sent after a crash is
harmless. Each thread opens its own Store on the same file.
"""

import os
import sqlite3
import time
from collections import namedtuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    server_id INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    detected_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (path, sha256)
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (state, id);
"""
WAITING = ("pending", "registered")


# A version of a file in the queue (a row of items).
Item = namedtuple("Item", "id path size mtime_ns sha256 state server_id attempts")

_COLUMNS = "id, path, size, mtime_ns, sha256, state, server_id, attempts"


class Store:
    def __init__(self, path):
        self.path = os.fspath(path)
        # Autocommit; writes that belong together go in explicit BEGIN IMMEDIATE ... COMMIT.
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives the process being killed; only a
        # power cut may lose the last ones, which are then detected again on the next scan.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute("PRAGMA wal_autocheckpoint=4000")  # pages: fewer, larger checkpoints
        with self._transaction():
            for statement in filter(str.strip, SCHEMA.split(";")):
                self._db.execute(statement)

    def close(self):
        self._db.close()

    def _transaction(self):
        return _Transaction(self._db)

    # --- the detector ----------------------------------------------------------------------

    def known(self, path: str, size: int, mtime_ns: int) -> bool:
        """True when this path was already hashed with exactly this size and mtime."""
        row = self._db.execute(
            "SELECT 1 FROM items WHERE path = ? AND size = ? AND mtime_ns = ?"
            " AND state != 'superseded' LIMIT 1",
            (path, size, mtime_ns),
        ).fetchone()
        return row is not None

    def known_versions(self, limit: int) -> set | None:
        """{(path, size, mtime_ns)} of the versions not superseded, or None if over `limit`."""
        if self._db.execute("SELECT count(*) FROM items").fetchone()[0] > limit:
            return None
        return set(
            self._db.execute(
                "SELECT path, size, mtime_ns FROM items WHERE state != 'superseded'"
            ).fetchall()
        )

    def add(self, detected: list[tuple[str, int, int, str]], fresh_paths: bool = False):
        """Queue (path, size, mtime_ns, sha256) versions, in one transaction.

        A version already in the queue (same path and hash) only has its size and mtime
        refreshed: it is never sent twice (a superseded one is pending again). A new version
        supersedes older ones of the same path not delivered yet (their content is gone);
        `fresh_paths` says no path in the batch was ever queued before, so none can be.
        """
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "INSERT INTO items (path, size, mtime_ns, sha256, detected_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path, sha256) DO UPDATE SET"
                " size = excluded.size, mtime_ns = excluded.mtime_ns, updated_at = excluded.updated_at,"
                " state = CASE state WHEN 'superseded' THEN 'pending' ELSE state END",
                [(path, size, mtime, sha, now, now) for path, size, mtime, sha in detected],
            )
            if not fresh_paths:
                self._db.executemany(
                    "UPDATE items SET state = 'superseded', updated_at = ?"
                    " WHERE path = ? AND sha256 != ? AND state IN ('pending', 'registered')",
                    [(now, path, sha) for path, _size, _mtime, sha in detected],
                )

    # --- the sender -----------------------------------------------------------------------

    def pending(self, limit: int, after: int = 0) -> list[Item]:
        """Up to `limit` versions waiting to be registered, oldest first, with ids > `after`."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM items WHERE state = 'pending' AND id > ?"  # noqa: S608
            " ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return list(map(Item._make, rows))

    def next_upload(self) -> Item | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM items WHERE state = 'registered' ORDER BY id LIMIT 1"  # noqa: S608
        ).fetchone()
        return Item(*row) if row else None

    def update(self, changes: list[tuple[int, str, int | None, str]]):
        """Apply (item id, new state, server id or None to keep, error) in one transaction.

        Only to versions still waiting: one the detector superseded meanwhile stays so."""
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "UPDATE items SET state = ?, server_id = COALESCE(?, server_id), error = ?,"
                " updated_at = ? WHERE id = ? AND state IN ('pending', 'registered')",
                [(state, server_id, error, now, id_) for id_, state, server_id, error in changes],
            )

    def count_attempt(self, item_id: int) -> int:
        with self._transaction():
            self._db.execute(
                "UPDATE items SET attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (time.time(), item_id),
            )
            return self._db.execute(
                "SELECT attempts FROM items WHERE id = ?", (item_id,)
            ).fetchone()[0]

    # --- reporting ------------------------------------------------------------------------

    def waiting(self) -> int:
        """Versions not delivered yet (pending registration or upload)."""
        return self._db.execute(
            "SELECT count(*) FROM items WHERE state IN ('pending', 'registered')"
        ).fetchone()[0]

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, count(*) FROM items GROUP BY state"))

    def retry_failed(self) -> int:
        """Put failed versions back to pending; the number moved."""
        with self._transaction():
            return self._db.execute(
                "UPDATE items SET state = 'pending', error = '', attempts = 0, updated_at = ?"
                " WHERE state = 'failed'",
                (time.time(),),
            ).rowcount


class _Transaction:
    def __init__(self, db):
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
