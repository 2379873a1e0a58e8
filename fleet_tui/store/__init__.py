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

from fleet_tui.store.baselines import BaselineQueries
from fleet_tui.store.cells import CellQueries
from fleet_tui.store.nodes import NodeQueries
from fleet_tui.store.records import (
    CellRow,
    RunRecord,
    RunSummary,
    SampleBatch,
    StoreError,
    ThermalPoint,
    elapsed_s,
    now_iso,
    pack_ns,
    unpack_ns,
)
from fleet_tui.store.results import ResultQueries
from fleet_tui.store.runlock import LockHolder, RunLock, RunLockedError
from fleet_tui.store.samples import SampleQueries
from fleet_tui.store.schema import (
    CELL_STATES,
    DEFAULT_MAX_ATTEMPTS,
    FINAL_CELL_STATES,
    MIGRATIONS,
    PROBE_PHASES,
    RESULT_STATUSES,
    RUN_STATUSES,
    SAMPLE_PHASES,
    SCHEMA_VERSION,
    VERDICTS,
)


class Store(NodeQueries, CellQueries, SampleQueries, ResultQueries, BaselineQueries):
    """The sweep store. `Store.open(path)`; use as a context manager to close it.

    One facade over the query groups (one module each); callers only ever see `Store`.
    """


__all__ = [
    "CELL_STATES",
    "DEFAULT_MAX_ATTEMPTS",
    "FINAL_CELL_STATES",
    "MIGRATIONS",
    "PROBE_PHASES",
    "RESULT_STATUSES",
    "RUN_STATUSES",
    "SAMPLE_PHASES",
    "SCHEMA_VERSION",
    "VERDICTS",
    "CellRow",
    "LockHolder",
    "RunRecord",
    "RunLock",
    "RunLockedError",
    "RunSummary",
    "SampleBatch",
    "Store",
    "StoreError",
    "ThermalPoint",
    "elapsed_s",
    "now_iso",
    "pack_ns",
    "unpack_ns",
]
