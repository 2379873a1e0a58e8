"""Cells: one (node, workload, bucket, engine config) of a sweep, and its stable key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def cell_key(workload: str, bucket: str, engine_key: str) -> str:
    """The stable cell key, e.g. cell_key("mlp", "b1", "mlx:cpu:fp32") == "mlp/b1/mlx:cpu:fp32"."""
    return f"{workload}/{bucket}/{engine_key}"


@dataclass(frozen=True)
class PlannedCell:
    """One cell of the plan (not yet in the store)."""

    node: str
    workload: str
    bucket: str
    engine: str
    config: Mapping[str, str]
    key: str
    """Stable name within the node: "workload/bucket/engine-key"."""
    budget_ms: float
    estimate_s: float
    """Expected duration if run (0 for unsupported cells)."""
    state: str = "pending"
    """"pending" or "unsupported" (then `reason` says why)."""
    reason: str | None = None

    @property
    def cell_id(self) -> str:
        """Unique within a run: "node/key"."""
        return f"{self.node}/{self.key}"
