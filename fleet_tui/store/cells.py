"""Cells of a run: add the plan, read, select unfinished, mark state."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from fleet_tui.store.db import _CELL_COLUMNS, _cell_row, _check, _dumps, _lastrowid
from fleet_tui.store.records import CellRow, StoreError, now_iso
from fleet_tui.store.runs import RunQueries
from fleet_tui.store.schema import CELL_STATES, DEFAULT_MAX_ATTEMPTS, FINAL_CELL_STATES

if TYPE_CHECKING:
    from fleet_tui.model.cells import PlannedCell


class CellQueries(RunQueries):
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
