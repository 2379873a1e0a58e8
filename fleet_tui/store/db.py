"""The store's connection: open (0600, WAL, migrations), transactions, and row helpers."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from fleet_tui.paths import make_private_dir, resolve_db_path
from fleet_tui.store.records import CellRow, StoreError
from fleet_tui.store.runlock import RunLock, acquire_run_lock
from fleet_tui.store.schema import BUSY_TIMEOUT_S, MIGRATIONS, SCHEMA_VERSION

_CELL_COLUMNS = (
    "id, run_id, node, workload, bucket, engine, config, key, state, attempts, reason, started_at, "
    "finished_at"
)


class StoreBase:
    """An open store connection; the query groups (nodes, runs, cells, samples, results) extend it."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._conn = connection
        self.path = path
        self._run_locks: dict[int, RunLock] = {}

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, *, busy_timeout_s: float = BUSY_TIMEOUT_S
    ) -> Self:
        """Open (creating 0600 and migrating as needed) the store at `path`.

        None means the default location (paths.default_db_path: $FLEET_TUI_DB, then the user
        data dir). Raises StoreError for a file that is not a fleet-tui store or is newer than
        this code.
        """
        db_path = resolve_db_path(path)
        problem = not_a_store_file(db_path)
        if problem is not None:
            raise StoreError(problem)
        try:
            make_private_dir(db_path.parent)
        except OSError as exc:  # e.g. a path component is a file, or no permission
            raise StoreError(
                f"{db_path}: cannot create its folder {db_path.parent}: {exc.strerror or exc}"
            ) from None
        try:
            # Create the file ourselves so it is never readable by others, not even briefly.
            fd = os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            os.chmod(db_path, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"{db_path}: cannot create the store: {exc.strerror or exc}") from None
        try:
            conn = sqlite3.connect(db_path, timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{db_path}: cannot open the store: {exc}") from None
        store = cls(conn, db_path)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            store._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{db_path}: not a usable fleet-tui store: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        for lock in self._run_locks.values():
            lock.release()
        self._run_locks.clear()
        self._conn.close()

    def lock_run(self, run_id: int) -> RunLock:
        """Hold run `run_id`'s lock until `release_run` or `close` (store/runlock.py).

        Raises RunLockedError (a StoreError naming the holder) while another process holds it.
        """
        lock = self._run_locks.get(run_id)
        if lock is None or not lock.held:
            lock = self._run_locks[run_id] = acquire_run_lock(self.path, run_id)
        return lock

    def release_run(self, run_id: int) -> None:
        lock = self._run_locks.pop(run_id, None)
        if lock is not None:
            lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        version: int = self._conn.execute("PRAGMA user_version").fetchone()[0]
        return version

    def _migrate(self) -> None:
        if self.schema_version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {self.schema_version} is newer than this fleet-tui "
                f"understands ({SCHEMA_VERSION}); upgrade fleet-tui"
            )
        if self.schema_version == SCHEMA_VERSION:
            return  # the common case takes no write lock, so readers open while a sweep writes
        for version, statements in enumerate(MIGRATIONS, start=1):
            with self._tx() as conn:
                # Re-read inside the write lock: another process may have migrated meanwhile.
                if conn.execute("PRAGMA user_version").fetchone()[0] >= version:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a busy database waits (busy_timeout)
        # at BEGIN instead of failing half-way through the transaction.
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # locked past busy_timeout, read-only, disk I/O error
            raise StoreError(f"{self.path}: cannot write: {exc}") from None
        try:
            yield self._conn
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: write failed: {exc}") from None
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: commit failed: {exc}") from None


def not_a_store_file(path: Path) -> str | None:
    """Why `path` cannot be a store although it exists (a directory, a FIFO, a device), or None.

    Checked before SQLite sees it: SQLite would fail on a directory with "unable to open database
    file" and could block forever reading a FIFO.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None  # not there (yet): creating it reports a folder that cannot be made
    except OSError as exc:
        return f"{path}: cannot use it as the store: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
    return f"{path} is {kind}; a fleet-tui store (--db) is one SQLite file"


def _cell_row(r: Sequence[Any]) -> CellRow:
    return CellRow(
        id=r[0],
        run_id=r[1],
        node=r[2],
        workload=r[3],
        bucket=r[4],
        engine=r[5],
        config=json.loads(r[6]),
        key=r[7],
        state=r[8],
        attempts=r[9],
        reason=r[10],
        started_at=r[11],
        finished_at=r[12],
    )


def _check(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise StoreError(f"invalid {what} {value!r} (one of: {', '.join(allowed)})")


def _dumps(value: Any) -> str:
    # allow_nan=False: NaN is not JSON; a summary carrying it is a bug upstream, say so here.
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _lastrowid(cursor: sqlite3.Cursor) -> int:
    rowid = cursor.lastrowid
    assert rowid is not None
    return rowid
