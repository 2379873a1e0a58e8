"""The SQLite store of sweeps: runs, cells, raw samples, results, thermal timeline, gate verdicts.

stdlib `sqlite3` in WAL mode, foreign keys on, schema versioned with ``PRAGMA user_version``
(`MIGRATIONS` lists the scripts; opening a store applies the missing ones, each in its own
transaction). The file is created 0600: it holds fleet facts (host names, hardware, load).

Durability: every write method is one transaction, committed before it returns, so a crash
loses at most the batch in flight. ``synchronous = NORMAL`` (safe with WAL): a committed batch
survives a process crash; a power cut may lose the last few commits but never corrupts the file.

Concurrency: one writer (the sweep scheduler) and any number of readers (the TUI, `runs`) in
other connections or processes; WAL lets readers read while the writer writes, and
``busy_timeout`` makes writers queue instead of failing. A `Store` object belongs to the thread
that opened it (sqlite3's check_same_thread); open one per thread, it is cheap.

Raw samples are stored per batch as BLOBs: ``array('q')`` of int64 nanoseconds, little-endian
(byte-swapped on a big-endian host so files move between machines), with the batch's sample
count. A cell's samples carry the attempt they were measured in; `samples()` returns the cell's
current attempt only, so a retried cell never mixes data from a lost attempt.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from fleet_tui.analysis.gates import CellOutcome, GateVerdict
from fleet_tui.paths import resolve_db_path

if TYPE_CHECKING:
    from fleet_tui.inventory import Node
    from fleet_tui.sweep.plan import PlannedCell
    from fleet_tui.sweep.spec import SweepSpec

RUN_STATUSES: Final = ("running", "complete", "incomplete", "interrupted", "failed")
CELL_STATES: Final = ("pending", "running", "done", "unsupported", "failed", "lost")
FINAL_CELL_STATES: Final = ("done", "unsupported", "failed", "lost")
RESULT_STATUSES: Final = {"ok": "done", "unsupported": "unsupported", "failed": "failed"}
"""cell_result status -> the cell state it leaves the cell in."""
SAMPLE_PHASES: Final = ("warmup", "measure", "sustained")
PROBE_PHASES: Final = ("start", "end", "adhoc")
VERDICTS: Final = ("pass", "fail", "skipped")

DEFAULT_MAX_ATTEMPTS: Final = 3
BUSY_TIMEOUT_S: Final = 10.0

# Each migration is a tuple of statements, applied in one transaction, after which
# user_version = its 1-based index. Never edit a shipped migration; append a new one.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the measurement record.
    (
        """CREATE TABLE nodes (
            name TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            transport TEXT NOT NULL,
            tier TEXT,
            hourly_usd REAL,
            purchase_usd REAL,
            tags TEXT NOT NULL DEFAULT '[]',  -- JSON list
            updated_at TEXT NOT NULL
        )""",
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            spec_toml TEXT NOT NULL,
            spec_json TEXT NOT NULL,
            contract_hash TEXT NOT NULL,
            versions TEXT NOT NULL DEFAULT '{}',  -- JSON: agent sha, libraries, artifact hashes
            status TEXT NOT NULL,                 -- RUN_STATUSES
            started_at TEXT NOT NULL,
            finished_at TEXT
        )""",
        """CREATE TABLE probes (
            id INTEGER PRIMARY KEY,
            run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
            node TEXT NOT NULL,
            phase TEXT NOT NULL,                  -- PROBE_PHASES
            taken_at TEXT NOT NULL,
            facts TEXT NOT NULL                   -- JSON snapshot (node_agent.facts)
        )""",
        "CREATE INDEX probes_node ON probes(node, taken_at)",
        """CREATE TABLE artifacts (
            id TEXT PRIMARY KEY,                  -- content hash
            workload TEXT NOT NULL,
            manifest TEXT NOT NULL,               -- JSON
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE cells (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            node TEXT NOT NULL,
            workload TEXT NOT NULL,
            bucket TEXT NOT NULL,
            engine TEXT NOT NULL,
            config TEXT NOT NULL,                 -- JSON
            key TEXT NOT NULL,                    -- workload/bucket/engine-key
            state TEXT NOT NULL,                  -- CELL_STATES
            attempts INTEGER NOT NULL DEFAULT 0,
            reason TEXT,
            started_at TEXT,
            finished_at TEXT,
            UNIQUE (run_id, node, key)
        )""",
        "CREATE INDEX cells_state ON cells(run_id, state)",
        """CREATE TABLE results (
            cell_id INTEGER PRIMARY KEY REFERENCES cells(id) ON DELETE CASCADE,
            status TEXT NOT NULL,                 -- ok | unsupported | failed
            summary TEXT NOT NULL,                -- JSON (node_agent.stats summary, ns)
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE samples (
            id INTEGER PRIMARY KEY,
            cell_id INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
            attempt INTEGER NOT NULL,
            run_idx INTEGER NOT NULL,
            phase TEXT NOT NULL,                  -- SAMPLE_PHASES
            batch_seq INTEGER NOT NULL,           -- 0, 1, 2 ... per cell, arrival order
            count INTEGER NOT NULL,
            ns BLOB NOT NULL,                     -- int64 little-endian, one per sample
            t_ns BLOB NOT NULL,                   -- int64 little-endian sample start times (or empty)
            UNIQUE (cell_id, batch_seq)
        )""",
    ),
    # 2: analysis: run exit codes, the thermal timeline and gate verdicts.
    (
        "ALTER TABLE runs ADD COLUMN exit_code INTEGER",
        """CREATE TABLE thermal (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            node TEXT NOT NULL,
            cell_id INTEGER REFERENCES cells(id) ON DELETE SET NULL,
            t_ns INTEGER NOT NULL,
            state TEXT NOT NULL                   -- JSON (node_agent.thermal.read_conditions)
        )""",
        "CREATE INDEX thermal_run ON thermal(run_id, node, t_ns)",
        """CREATE TABLE gates (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            cell_id INTEGER REFERENCES cells(id) ON DELETE CASCADE,
            cell_key TEXT,
            node TEXT NOT NULL,
            workload TEXT NOT NULL,
            bucket TEXT NOT NULL,
            gate TEXT NOT NULL,
            verdict TEXT NOT NULL,                -- pass | fail | skipped
            detail TEXT NOT NULL,
            value REAL,
            threshold REAL
        )""",
        "CREATE INDEX gates_run ON gates(run_id, verdict)",
    ),
    # 3: `probes(run_id)` (a run's facts snapshots) read without scanning every probe ever taken.
    ("CREATE INDEX probes_run ON probes(run_id)",),
    # 4: named baselines (`fleet-tui baseline set NAME RUN`, `compare --against NAME`).
    (
        """CREATE TABLE baselines (
            name TEXT PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL
        )""",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)


class StoreError(Exception):
    """A store problem: unreadable or too-new database, unknown run or cell, invalid value."""


@dataclass(frozen=True)
class RunRecord:
    id: int
    name: str
    status: str
    spec_toml: str
    spec: dict[str, Any]
    """The spec as JSON data (SweepSpec.to_json)."""
    contract_hash: str
    versions: dict[str, Any]
    started_at: str
    finished_at: str | None
    exit_code: int | None


@dataclass(frozen=True)
class RunSummary:
    """One line of `runs`: the run with its cell and gate counts."""

    id: int
    name: str
    status: str
    contract_hash: str
    started_at: str
    finished_at: str | None
    exit_code: int | None
    nodes: tuple[str, ...]
    cells: dict[str, int] = field(default_factory=dict)
    """Cell state -> count (states with no cells are left out)."""
    gates: dict[str, int] = field(default_factory=dict)
    """Verdict -> count, all of pass / fail / skipped present."""

    @property
    def gates_passed(self) -> bool | None:
        """None before any gate was evaluated."""
        if not any(self.gates.values()):
            return None
        return self.gates.get("fail", 0) == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "contract_hash": self.contract_hash,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            "nodes": list(self.nodes),
            "cells": dict(self.cells),
            "gates": dict(self.gates),
            "gates_passed": self.gates_passed,
        }


@dataclass(frozen=True)
class CellRow:
    id: int
    run_id: int
    node: str
    workload: str
    bucket: str
    engine: str
    config: dict[str, str]
    key: str
    state: str
    attempts: int
    reason: str | None
    started_at: str | None
    finished_at: str | None

    def job_cell(self) -> dict[str, Any]:
        """The cell entry of an agent job; the wire cell_id is the store id as a string."""
        return {
            "cell_id": str(self.id),
            "workload": self.workload,
            "bucket": self.bucket,
            "engine": self.engine,
            "config": dict(self.config),
        }


@dataclass(frozen=True)
class SampleBatch:
    run_idx: int
    phase: str
    batch_seq: int
    attempt: int
    ns: list[int]
    t_ns: list[int]


@dataclass(frozen=True)
class ThermalPoint:
    node: str
    cell_id: int | None
    t_ns: int
    state: dict[str, Any]


def pack_ns(values: Sequence[int]) -> bytes:
    """int64 little-endian bytes of `values` (the samples BLOB format)."""
    packed = array("q", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_ns(blob: bytes) -> list[int]:
    """Inverse of `pack_ns`."""
    values = array("q")
    values.frombytes(blob)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def now_iso() -> str:
    """UTC timestamp, ISO-8601 with milliseconds (the store's time format)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def elapsed_s(started: str | None, finished: str | None) -> float | None:
    """Seconds between two store timestamps; None when either is missing or unreadable."""
    if not started or not finished:
        return None
    try:
        return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except ValueError:
        return None


_CELL_COLUMNS = (
    "id, run_id, node, workload, bucket, engine, config, key, state, attempts, reason, started_at, "
    "finished_at"
)


class Store:
    """The sweep store. `Store.open(path)`; use as a context manager to close it."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._conn = connection
        self.path = path

    # -- lifecycle --

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, *, busy_timeout_s: float = BUSY_TIMEOUT_S
    ) -> Store:
        """Open (creating 0600 and migrating as needed) the store at `path`.

        None means the default location (paths.default_db_path: $FLEET_TUI_DB, then the user
        data dir). Raises StoreError for a file that is not a fleet-tui store or is newer than
        this code.
        """
        db_path = resolve_db_path(path)
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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
        self._conn.close()

    def __enter__(self) -> Store:
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
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- nodes, probes, artifacts --

    def upsert_nodes(self, nodes: Iterable[Node]) -> None:
        """Record (or refresh) inventory nodes, so a run's history names what they were."""
        stamp = now_iso()
        with self._tx() as conn:
            conn.executemany(
                """INSERT INTO nodes (name, host, transport, tier, hourly_usd, purchase_usd, tags, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET host = excluded.host, transport = excluded.transport,
                     tier = excluded.tier, hourly_usd = excluded.hourly_usd,
                     purchase_usd = excluded.purchase_usd, tags = excluded.tags,
                     updated_at = excluded.updated_at""",
                [
                    (
                        n.name,
                        n.host,
                        n.transport,
                        n.tier,
                        n.hourly_usd,
                        n.purchase_usd,
                        json.dumps(list(n.tags)),
                        stamp,
                    )
                    for n in nodes
                ],
            )

    def nodes(self) -> list[dict[str, Any]]:
        """Recorded nodes as dicts (tags decoded)."""
        rows = self._conn.execute(
            "SELECT name, host, transport, tier, hourly_usd, purchase_usd, tags, updated_at "
            "FROM nodes ORDER BY name"
        ).fetchall()
        keys = ("name", "host", "transport", "tier", "hourly_usd", "purchase_usd", "tags", "updated_at")
        return [dict(zip(keys, row, strict=True)) | {"tags": json.loads(row[6])} for row in rows]

    def add_probe(
        self,
        node: str,
        facts: Mapping[str, Any],
        *,
        phase: str = "adhoc",
        run_id: int | None = None,
        taken_at: str | None = None,
    ) -> int:
        """Store a facts snapshot (phase "start"/"end" of a run, or "adhoc"). Returns its id."""
        _check("probe phase", phase, PROBE_PHASES)
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO probes (run_id, node, phase, taken_at, facts) VALUES (?, ?, ?, ?, ?)",
                (run_id, node, phase, taken_at or now_iso(), _dumps(facts)),
            )
        return _lastrowid(cursor)

    def latest_facts(self, nodes: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """node -> its most recent facts snapshot (for planning unsupported cells)."""
        rows = self._conn.execute(
            """SELECT node, facts FROM probes p
               WHERE id = (SELECT id FROM probes q WHERE q.node = p.node
                           ORDER BY taken_at DESC, id DESC LIMIT 1)"""
        ).fetchall()
        wanted = None if nodes is None else set(nodes)
        return {node: json.loads(facts) for node, facts in rows if wanted is None or node in wanted}

    def probes(self, run_id: int) -> list[dict[str, Any]]:
        """Facts snapshots taken for a run: dicts with node, phase, taken_at, facts."""
        rows = self._conn.execute(
            "SELECT node, phase, taken_at, facts FROM probes WHERE run_id = ? ORDER BY id", (run_id,)
        ).fetchall()
        return [{"node": n, "phase": p, "taken_at": t, "facts": json.loads(f)} for n, p, t, f in rows]

    def add_artifact(self, artifact_id: str, workload: str, manifest: Mapping[str, Any]) -> None:
        """Record a content-addressed artifact (idempotent: the id is its hash)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO artifacts (id, workload, manifest, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (artifact_id, workload, _dumps(manifest), now_iso()),
            )

    def artifact(self, artifact_id: str) -> dict[str, Any] | None:
        """The manifest of an artifact, None if unknown."""
        row = self._conn.execute("SELECT manifest FROM artifacts WHERE id = ?", (artifact_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # -- runs --

    def create_run(self, spec: SweepSpec, versions: Mapping[str, Any] | None = None) -> int:
        """Start a run of `spec` (status "running"). Returns the run id."""
        with self._tx() as conn:
            cursor = conn.execute(
                """INSERT INTO runs (name, spec_toml, spec_json, contract_hash, versions, status, started_at)
                   VALUES (?, ?, ?, ?, ?, 'running', ?)""",
                (
                    spec.name,
                    spec.text,
                    _dumps(spec.to_json()),
                    spec.contract_hash,
                    _dumps(versions or {}),
                    now_iso(),
                ),
            )
        return _lastrowid(cursor)

    def set_run_status(self, run_id: int, status: str, exit_code: int | None = None) -> None:
        """Set a run's status; any status but "running" also stamps finished_at."""
        _check("run status", status, RUN_STATUSES)
        finished = None if status == "running" else now_iso()
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, exit_code = ?, finished_at = ? WHERE id = ?",
                (status, exit_code, finished, run_id),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"no run {run_id}")

    def run(self, run_id: int) -> RunRecord:
        """One run; StoreError if there is none with that id."""
        row = self._conn.execute(
            """SELECT id, name, status, spec_toml, spec_json, contract_hash, versions, started_at,
                      finished_at, exit_code FROM runs WHERE id = ?""",
            (run_id,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id} in {self.path}")
        return RunRecord(
            id=row[0],
            name=row[1],
            status=row[2],
            spec_toml=row[3],
            spec=json.loads(row[4]),
            contract_hash=row[5],
            versions=json.loads(row[6]),
            started_at=row[7],
            finished_at=row[8],
            exit_code=row[9],
        )

    def list_runs(self) -> list[RunSummary]:
        """Every run, newest first, with cell-state and gate-verdict counts."""
        cells: dict[int, dict[str, int]] = {}
        for run_id, state, count in self._conn.execute(
            "SELECT run_id, state, COUNT(*) FROM cells GROUP BY run_id, state"
        ):
            cells.setdefault(run_id, {})[state] = count
        gates: dict[int, dict[str, int]] = {}
        for run_id, verdict, count in self._conn.execute(
            "SELECT run_id, verdict, COUNT(*) FROM gates GROUP BY run_id, verdict"
        ):
            gates.setdefault(run_id, {})[verdict] = count
        nodes: dict[int, list[str]] = {}
        for run_id, node in self._conn.execute(
            "SELECT DISTINCT run_id, node FROM cells ORDER BY run_id, node"
        ):
            nodes.setdefault(run_id, []).append(node)
        rows = self._conn.execute(
            "SELECT id, name, status, contract_hash, started_at, finished_at, exit_code "
            "FROM runs ORDER BY id DESC"
        ).fetchall()
        return [
            RunSummary(
                id=r[0],
                name=r[1],
                status=r[2],
                contract_hash=r[3],
                started_at=r[4],
                finished_at=r[5],
                exit_code=r[6],
                nodes=tuple(nodes.get(r[0], [])),
                cells=cells.get(r[0], {}),
                gates={v: gates.get(r[0], {}).get(v, 0) for v in VERDICTS},
            )
            for r in rows
        ]

    # -- cells --

    def add_cells(self, run_id: int, cells: Iterable[PlannedCell]) -> list[int]:
        """Insert a plan's cells (pending or unsupported with reason). Returns ids in order."""
        stamp = now_iso()
        ids: list[int] = []
        with self._tx() as conn:
            for cell in cells:
                _check("cell state", cell.state, CELL_STATES)
                cursor = conn.execute(
                    """INSERT INTO cells (run_id, node, workload, bucket, engine, config, key, state, reason,
                                          finished_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (
                        run_id,
                        cell.node,
                        cell.workload,
                        cell.bucket,
                        cell.engine,
                        _dumps(cell.config),
                        cell.key,
                        cell.state,
                        cell.reason,
                        stamp if cell.state in FINAL_CELL_STATES else None,
                    ),
                )
                ids.append(_lastrowid(cursor))
        return ids

    def cells_for(
        self, run_id: int, states: Collection[str] | None = None, node: str | None = None
    ) -> list[CellRow]:
        """A run's cells (in plan order), optionally only those in `states` / on `node`."""
        query = f"SELECT {_CELL_COLUMNS} FROM cells WHERE run_id = ?"
        params: list[Any] = [run_id]
        if states is not None:
            for state in states:
                _check("cell state", state, CELL_STATES)
            query += f" AND state IN ({', '.join('?' * len(states))})"
            params += list(states)
        if node is not None:
            query += " AND node = ?"
            params.append(node)
        return [_cell_row(r) for r in self._conn.execute(query + " ORDER BY id", params)]

    def cell(self, cell_id: int) -> CellRow:
        row = self._conn.execute(f"SELECT {_CELL_COLUMNS} FROM cells WHERE id = ?", (cell_id,)).fetchone()
        if row is None:
            raise StoreError(f"no cell {cell_id} in {self.path}")
        return _cell_row(row)

    def unfinished_cells(self, run_id: int, max_attempts: int | None = None) -> list[CellRow]:
        """Cells `sweep --resume` runs again: pending (never run, or interrupted), running (the
        sweep process died), lost, and failed with attempts left (attempts < max_attempts;
        default: the run's scheduler.max_attempts)."""
        if max_attempts is None:
            scheduler = self.run(run_id).spec.get("scheduler", {})
            max_attempts = int(scheduler.get("max_attempts", DEFAULT_MAX_ATTEMPTS))
        rows = self._conn.execute(
            f"""SELECT {_CELL_COLUMNS} FROM cells WHERE run_id = ?
                AND (state IN ('pending', 'running', 'lost') OR (state = 'failed' AND attempts < ?))
                ORDER BY id""",
            (run_id, max_attempts),
        )
        return [_cell_row(r) for r in rows]

    def mark_cell(
        self, cell_id: int, state: str, reason: str | None = None, attempt_inc: bool = False
    ) -> None:
        """Move a cell to `state` with `reason` (None clears it).

        "running" stamps started_at and clears finished_at; a final state stamps finished_at.
        `attempt_inc` counts a new attempt (do it when a cell starts running): samples stored
        from then on belong to the new attempt.
        """
        _check("cell state", state, CELL_STATES)
        stamp = now_iso()
        with self._tx() as conn:
            cursor = conn.execute(
                """UPDATE cells SET state = ?, reason = ?, attempts = attempts + ?,
                     started_at = CASE WHEN ? = 'running' THEN ? ELSE started_at END,
                     finished_at = CASE WHEN ? = 'running' OR ? = 'pending' THEN NULL
                                        ELSE ? END
                   WHERE id = ?""",
                (state, reason, 1 if attempt_inc else 0, state, stamp, state, state, stamp, cell_id),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"no cell {cell_id}")

    # -- samples --

    def add_samples(
        self, cell_id: int, run_idx: int, phase: str, ns: Sequence[int], t_ns: Sequence[int] = ()
    ) -> int:
        """Store one batch of raw samples (ns) with their start times (t_ns, same length, or
        empty), committed at once. Returns the batch's sequence number within the cell."""
        _check("sample phase", phase, SAMPLE_PHASES)
        if t_ns and len(t_ns) != len(ns):
            raise StoreError(f"cell {cell_id}: {len(ns)} samples but {len(t_ns)} timestamps")
        ns_blob, t_blob = pack_ns(ns), pack_ns(t_ns)
        with self._tx() as conn:
            row = conn.execute(
                """SELECT attempts, (SELECT COALESCE(MAX(batch_seq), -1) FROM samples WHERE cell_id = ?)
                   FROM cells WHERE id = ?""",
                (cell_id, cell_id),
            ).fetchone()
            if row is None:
                raise StoreError(f"no cell {cell_id}")
            seq = row[1] + 1
            conn.execute(
                """INSERT INTO samples (cell_id, attempt, run_idx, phase, batch_seq, count, ns, t_ns)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (cell_id, row[0], run_idx, phase, seq, len(ns), ns_blob, t_blob),
            )
        return int(seq)

    def samples(self, cell_id: int, phase: str | None = "measure", run_idx: int | None = None) -> list[int]:
        """Raw samples (ns) of the cell's current attempt, in arrival order; `phase` None = all."""
        return [v for batch in self.sample_batches(cell_id, phase=phase, run_idx=run_idx) for v in batch.ns]

    def sample_batches(
        self, cell_id: int, phase: str | None = None, run_idx: int | None = None, attempt: int | None = None
    ) -> list[SampleBatch]:
        """Sample batches of one attempt (default: the cell's current one), in arrival order."""
        query = """SELECT run_idx, phase, batch_seq, attempt, ns, t_ns FROM samples WHERE cell_id = ?
                   AND attempt = COALESCE(?, (SELECT attempts FROM cells WHERE id = ?))"""
        params: list[Any] = [cell_id, attempt, cell_id]
        if phase is not None:
            query += " AND phase = ?"
            params.append(phase)
        if run_idx is not None:
            query += " AND run_idx = ?"
            params.append(run_idx)
        return [
            SampleBatch(
                run_idx=r[0],
                phase=r[1],
                batch_seq=r[2],
                attempt=r[3],
                ns=unpack_ns(r[4]),
                t_ns=unpack_ns(r[5]),
            )
            for r in self._conn.execute(query + " ORDER BY batch_seq", params)
        ]

    def sample_count(self, cell_id: int, phase: str | None = "measure") -> int:
        """How many samples the cell's current attempt has (cheap: no BLOB decoding)."""
        query = """SELECT COALESCE(SUM(count), 0) FROM samples WHERE cell_id = ?
                   AND attempt = (SELECT attempts FROM cells WHERE id = ?)"""
        params: list[Any] = [cell_id, cell_id]
        if phase is not None:
            query += " AND phase = ?"
            params.append(phase)
        count: int = self._conn.execute(query, params).fetchone()[0]
        return count

    # -- results, thermal, gates --

    def add_result(
        self, cell_id: int, summary: Mapping[str, Any] | None, status: str = "ok", reason: str | None = None
    ) -> None:
        """Store a cell_result and move the cell to its final state in the same transaction
        (ok -> done, unsupported -> unsupported, failed -> failed)."""
        _check("result status", status, tuple(RESULT_STATUSES))
        stamp = now_iso()
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE cells SET state = ?, reason = ?, finished_at = ? WHERE id = ?",
                (RESULT_STATUSES[status], reason, stamp, cell_id),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"no cell {cell_id}")
            conn.execute(
                "INSERT OR REPLACE INTO results (cell_id, status, summary, created_at) VALUES (?, ?, ?, ?)",
                (cell_id, status, _dumps(summary or {}), stamp),
            )

    def result(self, cell_id: int) -> dict[str, Any] | None:
        """The stored summary of a cell, None if it has no result."""
        row = self._conn.execute("SELECT summary FROM results WHERE cell_id = ?", (cell_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def outcomes(self, run_id: int) -> list[CellOutcome]:
        """Every cell of a run with its summary (None where it has none): the gates' input."""
        rows = self._conn.execute(
            """SELECT c.id, c.node, c.workload, c.bucket, c.engine, c.config, c.key, c.state, c.reason,
                      r.summary
               FROM cells c LEFT JOIN results r ON r.cell_id = c.id
               WHERE c.run_id = ? ORDER BY c.id""",
            (run_id,),
        )
        return [
            CellOutcome(
                cell_id=r[0],
                node=r[1],
                workload=r[2],
                bucket=r[3],
                engine=r[4],
                config=json.loads(r[5]),
                key=r[6],
                state=r[7],
                reason=r[8],
                summary=None if r[9] is None else json.loads(r[9]),
            )
            for r in rows
        ]

    def add_thermal(
        self, run_id: int, node: str, t_ns: int, state: Mapping[str, Any], cell_id: int | None = None
    ) -> None:
        """One point of a node's thermal timeline (node_agent.thermal.read_conditions)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO thermal (run_id, node, cell_id, t_ns, state) VALUES (?, ?, ?, ?, ?)",
                (run_id, node, cell_id, t_ns, _dumps(state)),
            )

    def thermal(self, run_id: int, node: str | None = None) -> list[ThermalPoint]:
        query = "SELECT node, cell_id, t_ns, state FROM thermal WHERE run_id = ?"
        params: list[Any] = [run_id]
        if node is not None:
            query += " AND node = ?"
            params.append(node)
        return [
            ThermalPoint(node=r[0], cell_id=r[1], t_ns=r[2], state=json.loads(r[3]))
            for r in self._conn.execute(query + " ORDER BY node, t_ns, id", params)
        ]

    def add_gate_verdicts(self, run_id: int, verdicts: Iterable[GateVerdict]) -> None:
        """Store a run's gate verdicts, replacing earlier ones (re-evaluating is idempotent)."""
        rows = []
        for v in verdicts:
            _check("gate verdict", v.verdict, VERDICTS)
            rows.append(
                (
                    run_id,
                    v.cell_id,
                    v.cell_key,
                    v.node,
                    v.workload,
                    v.bucket,
                    v.gate,
                    v.verdict,
                    v.detail,
                    v.value,
                    v.threshold,
                )
            )
        with self._tx() as conn:
            conn.execute("DELETE FROM gates WHERE run_id = ?", (run_id,))
            conn.executemany(
                """INSERT INTO gates (run_id, cell_id, cell_key, node, workload, bucket, gate, verdict,
                                      detail, value, threshold)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                rows,
            )

    def gate_verdicts(self, run_id: int) -> list[GateVerdict]:
        rows = self._conn.execute(
            """SELECT gate, verdict, node, workload, bucket, cell_id, cell_key, detail, value, threshold
               FROM gates WHERE run_id = ? ORDER BY id""",
            (run_id,),
        )
        return [
            GateVerdict(
                gate=r[0],
                verdict=r[1],
                node=r[2],
                workload=r[3],
                bucket=r[4],
                cell_id=r[5],
                cell_key=r[6],
                detail=r[7],
                value=r[8],
                threshold=r[9],
            )
            for r in rows
        ]

    # -- named baselines --

    def set_baseline(self, name: str, run_id: int) -> None:
        """Name run `run_id` as baseline `name` (replacing an earlier run of that name)."""
        if not name or not name.strip():
            raise StoreError("a baseline name must not be empty")
        self.run(run_id)  # StoreError for an unknown run
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO baselines (name, run_id, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id, created_at = excluded.created_at",
                (name, run_id, now_iso()),
            )

    def baseline(self, name: str) -> int | None:
        """The run id of baseline `name`, None when there is no such baseline."""
        row = self._conn.execute("SELECT run_id FROM baselines WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def list_baselines(self) -> list[dict[str, Any]]:
        """Every named baseline: dicts with name, run_id, created_at, by name."""
        rows = self._conn.execute("SELECT name, run_id, created_at FROM baselines ORDER BY name").fetchall()
        return [{"name": n, "run_id": r, "created_at": c} for n, r, c in rows]


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
