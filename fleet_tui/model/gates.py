"""What gates read (`CellOutcome`) and what they decide (`GateVerdict`): records the store keeps too."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from node_agent.engines import precision_of

Verdict = Literal["pass", "fail", "inconclusive", "skipped"]
VERDICTS: Final = ("pass", "fail", "inconclusive", "skipped")


@dataclass(frozen=True)
class CellOutcome:
    """What the gates read about one cell: where it ran, its final state and its summary."""

    cell_id: int
    node: str
    workload: str
    bucket: str
    engine: str
    config: Mapping[str, str]
    key: str
    state: str
    """Cell state in the store: done, unsupported, failed, lost, pending, running."""
    reason: str | None = None
    summary: Mapping[str, Any] | None = None

    @property
    def precision(self) -> str:
        return precision_of(self.engine, self.config)


@dataclass(frozen=True)
class GateVerdict:
    gate: str
    verdict: Verdict
    node: str
    workload: str
    bucket: str
    cell_id: int | None
    cell_key: str | None
    detail: str
    value: float | None = None
    """The measured figure the gate compared (a ratio, or ms for over_budget)."""
    threshold: float | None = None
