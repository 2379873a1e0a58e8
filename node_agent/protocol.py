"""The wire format between the controller and a node agent: one JSON object per line.

This module is the one definition of the format. The agent writes events with `Emitter`;
the controller reads them with `decode_event`. It is stdlib only, because the same file
ships to every node inside the agent zipapp.

Every line carries ``schema`` (an int, `SCHEMA`) and ``type`` (one of `EVENT_TYPES`).
Readers ignore fields they do not know, so adding a field is not a schema change; removing
or re-typing one is.

Schema history:
    1 - first version: hello, facts, cell_started, progress, samples, thermal, cell_result,
        warning, error, busy, done.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from enum import IntEnum
from typing import IO, Any, Final

SCHEMA: Final = 1
"""Bumped when a field is removed or changes meaning; see the history above."""

EVENT_TYPES: Final = frozenset(
    {
        "hello",  # agent_sha, agent_version, python, platform, machine, pid, libs, engines, workloads
        "facts",  # facts: dict (node_agent.facts.collect_facts)
        "cell_started",  # cell_id, workload, bucket, engine, config
        "progress",  # cell_id, phase, done, total (coalescable: only the latest matters)
        "samples",  # cell_id, run, phase ("warmup" | "measure" | "sustained"), ns: list[int], t_ns: list[int]
        "thermal",  # t_ns, state: dict (node_agent.thermal.read_conditions)
        "cell_result",  # cell_id, status ("ok" | "unsupported" | "failed"), reason, summary: dict
        "warning",  # code, message
        "error",  # code, message, optional cell_id; fatal errors are followed by done(ok=false)
        "busy",  # holder: dict (pid, host, started, command) of the lock owner
        "done",  # ok: bool, exit_code: int
    }
)


class AgentExit(IntEnum):
    """The agent's exit codes (also `done.exit_code`). The controller reads BUSY from here."""

    OK = 0
    FAILED = 1
    """Stopped (stdin closed, stdout broken) before the job finished."""
    BAD_INPUT = 2
    TAMPERED = 3
    """The agent's archive does not match its own name (sha256)."""
    BUSY = 4
    """Another job holds the node's lock (a `busy` event names the holder)."""
    INTERNAL = 5
    INTERRUPTED = 130


MAX_LINE_BYTES: Final = 16 * 1024 * 1024
"""A line longer than this is garbage, not a sample batch (batches are a few hundred kB)."""


class ProtocolError(ValueError):
    """A line from an agent that is not a valid event. Carries the offending text (clipped)."""

    def __init__(self, message: str, line: str) -> None:
        clipped = line if len(line) <= 200 else line[:200] + f"... ({len(line)} chars)"
        super().__init__(f"{message}: {clipped!r}")
        self.line = line


def encode_event(event_type: str, **fields: Any) -> str:
    """One event as a JSON line (without the newline). Raises ValueError on an unknown type."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    return json.dumps(
        {"schema": SCHEMA, "type": event_type, **fields}, separators=(",", ":"), allow_nan=False
    )


def decode_event(line: str | bytes) -> dict[str, Any]:
    """Parse one line from an agent. Raises ProtocolError for anything that is not an event."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.strip()
    if len(text) > MAX_LINE_BYTES:
        raise ProtocolError("line too long", text)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON ({exc.msg})", text) from None
    if not isinstance(obj, dict):
        raise ProtocolError("not a JSON object", text)
    schema = obj.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise ProtocolError("missing or non-integer 'schema'", text)
    if schema != SCHEMA:
        raise ProtocolError(f"schema {schema} is not the supported schema {SCHEMA}", text)
    event_type = obj.get("type")
    if event_type not in EVENT_TYPES:
        raise ProtocolError(f"unknown event type {event_type!r}", text)
    return obj


class Emitter:
    """Writes events to stdout (or any text stream), one flushed line each, from any thread.

    A broken stdout (the controller went away) sets `broken` instead of raising, so the
    agent can wind down; callers check it between cells.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self.broken = False

    def emit(self, event_type: str, **fields: Any) -> bool:
        """Write one event. Returns False once the stream is broken."""
        line = encode_event(event_type, **fields)
        with self._lock:
            if self.broken:
                return False
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                # ValueError: write to a closed file. Either way nobody is listening.
                self.broken = True
                return False
        return True

    def error(self, code: str, message: str, **fields: Any) -> bool:
        return self.emit("error", code=code, message=message, **fields)

    def warning(self, code: str, message: str, **fields: Any) -> bool:
        return self.emit("warning", code=code, message=message, **fields)

    def done(self, exit_code: int) -> bool:
        return self.emit("done", ok=exit_code == 0, exit_code=exit_code)


def require_fields(event: Mapping[str, Any], *names: str) -> None:
    """Raise ProtocolError unless every named field is present (for events the reader relies on)."""
    missing = [n for n in names if n not in event]
    if missing:
        raise ProtocolError(f"{event.get('type')} event lacks {', '.join(missing)}", json.dumps(event))
