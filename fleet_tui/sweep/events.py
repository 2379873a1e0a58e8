"""What the scheduler tells its front end (`Progress`), and the order checks on agent events."""

from __future__ import annotations

from typing import Any


class Progress:
    """Base: a sink for scheduler events. Subclasses render; this one discards."""

    def emit(self, kind: str, *, node: str | None = None, message: str = "", **fields: Any) -> None:
        return None

    def close(self) -> None:
        return None
