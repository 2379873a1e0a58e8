"""Nodes, their probe snapshots (facts) and the artifacts sent to them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from fleet_tui.store.db import StoreBase, _check, _dumps, _lastrowid
from fleet_tui.store.records import now_iso
from fleet_tui.store.schema import PROBE_PHASES

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node


class NodeQueries(StoreBase):
    def upsert_nodes(self, nodes: Iterable[Node]) -> None:
        """Record (or refresh) inventory nodes, so a run's history names what they were."""
        stamp = now_iso()
        with self._tx() as conn:
            conn.executemany(
                """INSERT INTO nodes (name, host, transport, tier, hourly_usd, purchase_usd, tags, updated_at,
                                      kwh_usd)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET host = excluded.host, transport = excluded.transport,
                     tier = excluded.tier, hourly_usd = excluded.hourly_usd,
                     purchase_usd = excluded.purchase_usd, tags = excluded.tags,
                     updated_at = excluded.updated_at, kwh_usd = excluded.kwh_usd""",
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
                        n.kwh_usd,
                    )
                    for n in nodes
                ],
            )

    def nodes(self) -> list[dict[str, Any]]:
        """Recorded nodes as dicts (tags decoded)."""
        rows = self._conn.execute(
            "SELECT name, host, transport, tier, hourly_usd, purchase_usd, tags, updated_at, kwh_usd "
            "FROM nodes ORDER BY name"
        ).fetchall()
        keys = (
            "name",
            "host",
            "transport",
            "tier",
            "hourly_usd",
            "purchase_usd",
            "tags",
            "updated_at",
            "kwh_usd",
        )
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
