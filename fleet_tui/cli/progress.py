"""Live sweep progress for the headless CLI, in three shapes.

- `TtyProgress`: one status line per node, redrawn in place (ANSI), with log lines (cell
  results, faults) scrolling above the block.
- `PlainProgress`: timestamped lines, for pipes and CI logs; agent `progress` ticks are
  coalesced to one line per node every `PLAIN_TICK_S`.
- `JsonProgress`: one JSON object per line (``{"type": ..., "t": ..., "node": ...}``: the same
  `type` envelope key as every other `--json` stream of fleet-tui); agent `progress` ticks
  coalesced to one per node every `JSON_TICK_S`.

The scheduler calls `emit(kind, node=..., message=..., **fields)`; `message` is the human text.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import IO, Any, Final

from fleet_tui.display import LINE_LIMIT, clean
from fleet_tui.sweep.events import Progress

PLAIN_TICK_S: Final = 10.0
JSON_TICK_S: Final = 0.5
TTY_REDRAW_S: Final = 0.1

ENVELOPE_KEYS: Final = frozenset({"type", "t", "node", "message"})

TICK_KINDS: Final = frozenset({"cell_progress"})
"""Events that are coalescable (only the latest matters)."""
STATUS_KINDS: Final = frozenset({"node_status", "cell_progress", "cell_started"})
"""Events that only update a node's status line on a TTY (no log line)."""
QUIET_KINDS: Final = frozenset({"samples", "thermal"})
"""Per-batch events (the store has them) that only the TUI draws; the headless shapes skip them."""


class JsonProgress(Progress):
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._last_tick: dict[str | None, float] = {}

    def emit(self, kind: str, *, node: str | None = None, message: str = "", **fields: Any) -> None:
        if kind in QUIET_KINDS:
            return
        if kind in TICK_KINDS:
            now = time.monotonic()
            if now - self._last_tick.get(node, 0.0) < JSON_TICK_S:
                return
            self._last_tick[node] = now
        record: dict[str, Any] = {"type": kind, "t": datetime.now(UTC).isoformat(timespec="milliseconds")}
        if node is not None:
            record["node"] = node
        if message:
            record["message"] = message
        for key, value in fields.items():
            # The envelope keys always mean the same thing; a field of that name is kept beside them.
            record[f"{key}_" if key in ENVELOPE_KEYS else key] = value
        self.stream.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
        self.stream.flush()


class PlainProgress(Progress):
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._last_tick: dict[str | None, float] = {}

    def emit(self, kind: str, *, node: str | None = None, message: str = "", **fields: Any) -> None:
        if kind in QUIET_KINDS:
            return
        if not message:
            return
        if kind in TICK_KINDS:
            now = time.monotonic()
            if now - self._last_tick.get(node, 0.0) < PLAIN_TICK_S:
                return
            self._last_tick[node] = now
        stamp = datetime.now().strftime("%H:%M:%S")
        prefix = f"{stamp} {node}: " if node else f"{stamp} "
        self.stream.write(clean(prefix + message, LINE_LIMIT) + "\n")
        self.stream.flush()


class TtyProgress(Progress):
    """A status block (one line per node) kept at the bottom of the terminal."""

    def __init__(self, nodes: list[str], stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.nodes = list(nodes)
        self.status: dict[str, str] = dict.fromkeys(self.nodes, "waiting")
        self._drawn = 0
        self._last_draw = 0.0
        self._width = max((len(n) for n in self.nodes), default=4)

    def _columns(self) -> int:
        import shutil

        return shutil.get_terminal_size((100, 24)).columns

    def _clear_block(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")  # up N lines, clear to the end
            self._drawn = 0

    def _draw(self) -> None:
        columns = self._columns()
        for node in self.nodes:
            line = clean(f"{node.ljust(self._width)}  {self.status.get(node, '')}", LINE_LIMIT)
            self.stream.write(line[: columns - 1] + "\n")
        self._drawn = len(self.nodes)
        self._last_draw = time.monotonic()
        self.stream.flush()

    def emit(self, kind: str, *, node: str | None = None, message: str = "", **fields: Any) -> None:
        if kind in QUIET_KINDS:
            return
        if node is not None and node not in self.status:
            self.nodes.append(node)
            self.status[node] = ""
            self._width = max(self._width, len(node))
        if kind in STATUS_KINDS:
            if node is not None and message:
                self.status[node] = message
            if time.monotonic() - self._last_draw < TTY_REDRAW_S:
                return
            self._clear_block()
            self._draw()
            return
        if node is not None and kind in ("cell_result", "node_done", "node_lost", "busy"):
            self.status[node] = message
        self._clear_block()
        if message:
            stamp = datetime.now().strftime("%H:%M:%S")
            self.stream.write(clean(f"{stamp} {node + ': ' if node else ''}{message}", LINE_LIMIT) + "\n")
        self._draw()

    def close(self) -> None:
        self._clear_block()
        self._draw()


def make_progress(nodes: list[str], *, as_json: bool, stream: IO[str] | None = None) -> Progress:
    """JSON lines with --json; a live block on a TTY (unless $CI is set); else plain lines."""
    import os

    out = stream or sys.stdout
    if as_json:
        return JsonProgress(out)
    if out.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb":
        return TtyProgress(nodes, out)
    return PlainProgress(out)
