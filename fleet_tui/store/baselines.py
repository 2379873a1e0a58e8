"""Named baselines: a run kept under a name, so nightly CI compares against it."""

from __future__ import annotations

from typing import Any

from fleet_tui.store.records import StoreError, now_iso
from fleet_tui.store.runs import RunQueries


class BaselineQueries(RunQueries):
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
