"""What the scheduler tells its front end (`Progress`), and the order checks on agent events.

`decode_event` (node_agent.protocol) checks each line alone; `EventOrder` checks the stream of one
job: nothing about cells before `hello`, no samples for a cell before its `cell_started` or after
its `cell_result`, one `cell_started` and one `cell_result` per cell, only the job's own cells.
A violation is the node's protocol error (`BadEvent`), never the controller's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

CELL_EVENTS = frozenset({"cell_started", "samples", "thermal", "cell_result", "progress"})
"""Events that are about the job's cells: none may come before `hello`."""


class BadEvent(Exception):
    """An agent event that is well-formed alone but wrong in its job (the node's fault)."""


class EventOrder:
    """Checks the order of one job's events; `check` raises BadEvent on the first violation."""

    def __init__(self, cell_ids: Collection[str]) -> None:
        self.cell_ids = frozenset(cell_ids)
        self.hello = False
        self.started: set[str] = set()
        self.finished: set[str] = set()

    def check(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        if kind == "hello":
            if self.hello:
                raise BadEvent("a second hello in one job")
            self.hello = True
            return
        if kind in CELL_EVENTS and not self.hello:
            raise BadEvent(f"{kind} before hello")
        cell_id = event.get("cell_id")
        if cell_id is None or kind not in CELL_EVENTS:
            return
        if cell_id not in self.cell_ids:
            raise BadEvent(f"cell_id {cell_id!r} is not in this job")
        if cell_id in self.finished and kind != "progress":
            raise BadEvent(f"{kind} for cell {cell_id} after its cell_result")
        if kind == "cell_started":
            if cell_id in self.started:
                raise BadEvent(f"cell {cell_id} started twice in one job")
            self.started.add(cell_id)
        elif kind == "samples" and cell_id not in self.started:
            raise BadEvent(f"samples for cell {cell_id} before its cell_started")
        elif kind == "cell_result":
            self.finished.add(cell_id)


class Progress:
    """Base: a sink for scheduler events. Subclasses render; this one discards."""

    def emit(self, kind: str, *, node: str | None = None, message: str = "", **fields: Any) -> None:
        return None

    def close(self) -> None:
        return None
