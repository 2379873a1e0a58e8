"""Cell results and outcomes, the thermal timeline, gate verdicts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from fleet_tui.model.gates import CellOutcome, GateVerdict
from fleet_tui.store.db import StoreBase, _check, _dumps
from fleet_tui.store.records import StoreError, ThermalPoint, now_iso
from fleet_tui.store.schema import RESULT_STATUSES, VERDICTS

ENERGY_COLUMNS: Final = (
    "status",
    "reader",
    "reader_version",
    "interval_ms",
    "window",
    "n_runs",
    "j_per_inf_soc",
    "j_per_inf_soc_lo",
    "j_per_inf_soc_hi",
    "j_per_inf_system",
    "j_per_inf_system_lo",
    "j_per_inf_system_hi",
    "watts_soc",
    "watts_system",
    "idle_watts_soc",
    "idle_watts_system",
    "thermal_state",
    "power_source",
    "detail",
)


def _real(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def energy_row(energy: Mapping[str, Any]) -> tuple[Any, ...]:
    """The `ENERGY_COLUMNS` values of a summary's energy object (absent figures are NULL)."""

    def mapping(key: str) -> Mapping[str, Any]:
        value = energy.get(key)
        return value if isinstance(value, Mapping) else {}

    reader, per_inference = mapping("reader"), mapping("j_per_inference")
    watts, idle = mapping("avg_watts"), mapping("idle_watts")

    def rail(name: str) -> tuple[float | None, float | None, float | None]:
        figure = per_inference.get(name)
        if not isinstance(figure, Mapping):
            return None, None, None
        return _real(figure.get("estimate")), _real(figure.get("lo")), _real(figure.get("hi"))

    interval = reader.get("interval_ms")
    return (
        str(energy.get("status") or "unknown"),
        _text(reader.get("name")),
        _text(reader.get("version")),
        interval if isinstance(interval, int) and not isinstance(interval, bool) else None,
        _text(energy.get("window")),
        energy.get("n_runs") if isinstance(energy.get("n_runs"), int) else None,
        *rail("soc"),
        *rail("system"),
        _real(watts.get("soc")),
        _real(watts.get("system")),
        _real(idle.get("soc")),
        _real(idle.get("system")),
        _text(energy.get("thermal_state")),
        _text(energy.get("power_source")),
        _dumps(energy),
    )


class ResultQueries(StoreBase):
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
            energy = (summary or {}).get("energy")
            if isinstance(energy, Mapping):
                conn.execute(
                    f"INSERT OR REPLACE INTO energy (cell_id, {', '.join(ENERGY_COLUMNS)}) "
                    f"VALUES (?, {', '.join('?' for _ in ENERGY_COLUMNS)})",
                    (cell_id, *energy_row(energy)),
                )

    def energy(self, run_id: int) -> list[dict[str, Any]]:
        """The energy rows of a run's cells (column -> value, ``detail`` decoded), by cell id."""
        rows = self._conn.execute(
            f"""SELECT e.cell_id, {", ".join("e." + c for c in ENERGY_COLUMNS)}
                FROM energy e JOIN cells c ON c.id = e.cell_id WHERE c.run_id = ? ORDER BY e.cell_id""",
            (run_id,),
        ).fetchall()
        keys = ("cell_id", *ENERGY_COLUMNS)
        return [dict(zip(keys, row, strict=True)) | {"detail": json.loads(row[-1])} for row in rows]

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
