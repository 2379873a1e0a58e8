"""Raw samples: committed per batch, read back for the current attempt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fleet_tui.store.db import StoreBase, _check
from fleet_tui.store.records import SampleBatch, StoreError, pack_ns, unpack_ns
from fleet_tui.store.schema import SAMPLE_PHASES

if TYPE_CHECKING:
    pass


class SampleQueries(StoreBase):
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
