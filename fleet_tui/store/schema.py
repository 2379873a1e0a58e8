"""The store's vocabulary and schema: allowed states and phases, and the migrations (append only)."""

from __future__ import annotations

from typing import Final

from fleet_tui.model.gates import VERDICTS as VERDICTS  # one definition, with inconclusive

RUN_STATUSES: Final = ("running", "complete", "incomplete", "interrupted", "failed")
CELL_STATES: Final = ("pending", "running", "done", "unsupported", "failed", "lost")
FINAL_CELL_STATES: Final = ("done", "unsupported", "failed", "lost")
RESULT_STATUSES: Final = {"ok": "done", "unsupported": "unsupported", "failed": "failed"}
"""cell_result status -> the cell state it leaves the cell in."""
SAMPLE_PHASES: Final = ("warmup", "measure", "sustained")
PROBE_PHASES: Final = ("start", "end", "adhoc")

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
    # 5: energy per inference (one row per cell whose result carries energy) and electricity prices.
    (
        "ALTER TABLE nodes ADD COLUMN kwh_usd REAL",
        """CREATE TABLE energy (
            cell_id INTEGER PRIMARY KEY REFERENCES cells(id) ON DELETE CASCADE,
            status TEXT NOT NULL,                 -- ok | energy_too_short | energy_unavailable ...
            reader TEXT,                          -- macmon | mactop | ioreport | powermetrics
            reader_version TEXT,
            interval_ms INTEGER,
            window TEXT,                          -- measure | sustained: the windows published
            n_runs INTEGER,
            j_per_inf_soc REAL,                   -- joules per inference net of idle, run-level
            j_per_inf_soc_lo REAL,
            j_per_inf_soc_hi REAL,
            j_per_inf_system REAL,
            j_per_inf_system_lo REAL,
            j_per_inf_system_hi REAL,
            watts_soc REAL,                       -- average watts over the windows, idle included
            watts_system REAL,
            idle_watts_soc REAL,
            idle_watts_system REAL,
            thermal_state TEXT,
            power_source TEXT,
            detail TEXT NOT NULL                  -- JSON: the summary's energy object
        )""",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
