"""Runs: create, status, read, list with cell and gate counts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fleet_tui.store.db import StoreBase, _check, _dumps, _lastrowid
from fleet_tui.store.records import RunRecord, RunSummary, StoreError, now_iso
from fleet_tui.store.schema import RUN_STATUSES, VERDICTS

if TYPE_CHECKING:
    from fleet_tui.config.spec import SweepSpec


class RunQueries(StoreBase):
    def create_run(self, spec: SweepSpec, versions: Mapping[str, Any] | None = None) -> int:
        """Start a run of `spec` (status "running"). Returns the run id.

        This store holds the new run's lock (`lock_run`), taken before the run is committed so
        no `--resume` of it can start in between; closing the store releases it.
        """
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
            run_id = _lastrowid(cursor)
            self.lock_run(run_id)
        return run_id

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
