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
import math
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from enum import IntEnum
from typing import IO, Any, Final, Literal, NotRequired, TypedDict, cast

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
"""The one line limit of the protocol: both transports read whole lines up to this many bytes; a
longer line is garbage, not a sample batch (batches are a few hundred kB)."""


INT64_MAX: Final = 2**63 - 1
"""Integers that the controller stores (timestamps, sample durations) must fit SQLite's int64."""

MAX_DEPTH: Final = 32
"""How deeply objects and lists may nest inside an event (facts and summaries use under 10). A
deeper value is garbage that would only blow the stack of whoever walks it later."""

SAMPLE_PHASES: Final = ("warmup", "measure", "sustained")
RESULT_STATUSES: Final = ("ok", "unsupported", "failed")


class ProtocolError(ValueError):
    """A line from an agent that is not a valid event. Carries the offending text (clipped)."""

    def __init__(self, message: str, line: str) -> None:
        clipped = line if len(line) <= 200 else line[:200] + f"... ({len(line)} chars)"
        super().__init__(f"{message}: {clipped!r}")
        self.line = line


# --- the events, as both sides see them ----------------------------------------------------------
# `decode_event` returns one of these (a dict checked against its TypedDict below); the agent
# writes them with `Emitter.emit(type, **fields)`. Optional fields are `NotRequired`.


class HelloEvent(TypedDict):
    schema: int
    type: Literal["hello"]
    agent_sha: NotRequired[str]
    """sha256 of the agent archive; a content-named agent must send it (the controller checks)."""
    command: NotRequired[str]
    agent_version: NotRequired[str]
    python: NotRequired[str]
    python_executable: NotRequired[str]
    platform: NotRequired[str]
    machine: NotRequired[str]
    pid: NotRequired[int]
    libs: NotRequired[dict[str, Any]]
    engines: NotRequired[Any]
    workloads: NotRequired[Any]


class FactsEvent(TypedDict):
    schema: int
    type: Literal["facts"]
    facts: dict[str, Any]


class CellStartedEvent(TypedDict):
    schema: int
    type: Literal["cell_started"]
    cell_id: str
    workload: NotRequired[str]
    bucket: NotRequired[str]
    engine: NotRequired[str]
    config: NotRequired[dict[str, Any]]


class ProgressEvent(TypedDict):
    schema: int
    type: Literal["progress"]
    cell_id: NotRequired[str]
    run: NotRequired[int]
    phase: NotRequired[str]
    done: NotRequired[int]
    total: NotRequired[int]
    worker_pid: NotRequired[int]


class SamplesEvent(TypedDict):
    schema: int
    type: Literal["samples"]
    cell_id: str
    run: int
    phase: Literal["warmup", "measure", "sustained"]
    ns: list[int]
    """Durations in nanoseconds: integers, 0 <= ns <= INT64_MAX."""
    t_ns: NotRequired[list[int]]
    thermal: NotRequired[str | None]


class ThermalEvent(TypedDict):
    schema: int
    type: Literal["thermal"]
    t_ns: int
    state: dict[str, Any]
    cell_id: NotRequired[str]
    run: NotRequired[int]


class CellResultEvent(TypedDict):
    schema: int
    type: Literal["cell_result"]
    cell_id: str
    status: Literal["ok", "unsupported", "failed"]
    reason: NotRequired[str | None]
    summary: NotRequired[dict[str, Any] | None]


class WarningEvent(TypedDict):
    schema: int
    type: Literal["warning"]
    code: str
    message: str
    cell_id: NotRequired[str]


class ErrorEvent(TypedDict):
    schema: int
    type: Literal["error"]
    code: str
    message: str
    cell_id: NotRequired[str]


class BusyEvent(TypedDict):
    schema: int
    type: Literal["busy"]
    holder: NotRequired[dict[str, Any]]


class DoneEvent(TypedDict):
    schema: int
    type: Literal["done"]
    ok: bool
    exit_code: int


TypedEvent = (
    HelloEvent
    | FactsEvent
    | CellStartedEvent
    | ProgressEvent
    | SamplesEvent
    | ThermalEvent
    | CellResultEvent
    | WarningEvent
    | ErrorEvent
    | BusyEvent
    | DoneEvent
)
"""What a checked event is; narrow with `cast(SamplesEvent, event)` after testing its type."""

Event = dict[str, Any]
"""A checked event as `decode_event` returns it: one of `TypedEvent`, plus any fields added later."""


# --- validation ------------------------------------------------------------------------------------
# A field check returns None when the value is fine, else what is wrong with it.

_Check = Callable[[object], "str | None"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # bool is an int subclass: refused


def _str(value: object) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _opt_str(value: object) -> str | None:
    return None if value is None or isinstance(value, str) else "must be a string or null"


def _bool(value: object) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _int(value: object) -> str | None:
    return None if _is_int(value) else "must be an integer"


def _count(value: object) -> str | None:
    """A non-negative int64 (run index, timestamp, count)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "must be an integer"
    return None if 0 <= value <= INT64_MAX else f"must be in 0..{INT64_MAX}"


def _object(value: object) -> str | None:
    return None if isinstance(value, dict) else "must be a JSON object"


def _opt_object(value: object) -> str | None:
    return None if value is None or isinstance(value, dict) else "must be a JSON object or null"


def _any(value: object) -> str | None:
    return None


def _durations(value: object) -> str | None:
    """A list of non-negative int64 nanoseconds (no bools, no floats, no negatives)."""
    if not isinstance(value, list):
        return "must be a list of integers"
    for index, item in enumerate(value):
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item <= INT64_MAX:
            return f"[{index}] = {_short(item)} is not an integer in 0..{INT64_MAX}"
    return None


def _one_of(*allowed: str) -> _Check:
    def check(value: object) -> str | None:
        return None if isinstance(value, str) and value in allowed else f"must be one of {', '.join(allowed)}"

    return check


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _rail_figures(value: object, *, non_negative: bool) -> str | None:
    """{rail: number}: watts are never negative; a net joule figure may be (below idle)."""
    if not isinstance(value, dict):
        return "must be a JSON object of rail -> number"
    for rail, number in value.items():
        if not _finite(number) or (non_negative and number < 0):
            return f"[{rail!r}] = {_short(number)} is not a{' non-negative' if non_negative else ''} number"
    return None


def _energy(value: object) -> str | None:
    """A cell's energy figures (node_agent.energy.meter.cell_energy): the published numbers typed."""
    if not isinstance(value, dict):
        return "must be a JSON object"
    if not isinstance(value.get("status"), str):
        return "status must be a string"
    for key in ("avg_watts", "idle_watts"):
        if key in value:
            problem = _rail_figures(value[key], non_negative=True)
            if problem is not None:
                return f"{key}{problem}"
    per_inference = value.get("j_per_inference", {})
    if not isinstance(per_inference, dict):
        return "j_per_inference must be a JSON object"
    for rail, figure in per_inference.items():
        if not isinstance(figure, dict) or not _finite(figure.get("estimate")):
            return f"j_per_inference[{rail!r}] needs a numeric estimate"
        for bound in ("lo", "hi"):
            if figure.get(bound) is not None and not _finite(figure[bound]):
                return f"j_per_inference[{rail!r}].{bound} must be a number or null"
    if value.get("reader") is not None and not isinstance(value["reader"], dict):
        return "reader must be a JSON object or null"
    return None


def _result_summary(value: object) -> str | None:
    """A cell_result summary: an object (or null) whose energy figures, when present, are typed."""
    problem = _opt_object(value)
    if problem is not None or not isinstance(value, dict) or "energy" not in value:
        return problem
    energy_problem = _energy(value["energy"])
    return None if energy_problem is None else f"energy: {energy_problem}"


_FIELDS: Final[dict[str, tuple[dict[str, _Check], dict[str, _Check]]]] = {
    # type: (required fields, optional fields)
    "hello": (
        {},
        {
            "agent_sha": _str,
            "command": _str,
            "agent_version": _str,
            "python": _str,
            "python_executable": _str,
            "platform": _str,
            "machine": _str,
            "pid": _count,
            "libs": _object,
            "engines": _any,
            "workloads": _any,
        },
    ),
    "facts": ({"facts": _object}, {}),
    "cell_started": (
        {"cell_id": _str},
        {"workload": _str, "bucket": _str, "engine": _str, "config": _object},
    ),
    "progress": (
        {},
        {
            "cell_id": _str,
            "run": _count,
            "phase": _str,
            "done": _count,
            "total": _count,
            "worker_pid": _count,
        },
    ),
    "samples": (
        {"cell_id": _str, "run": _count, "phase": _one_of(*SAMPLE_PHASES), "ns": _durations},
        {"t_ns": _durations, "thermal": _opt_str},
    ),
    "thermal": ({"t_ns": _count, "state": _object}, {"cell_id": _str, "run": _count}),
    "cell_result": (
        {"cell_id": _str, "status": _one_of(*RESULT_STATUSES)},
        {"reason": _opt_str, "summary": _result_summary},
    ),
    "warning": ({"code": _str, "message": _str}, {"cell_id": _str}),
    "error": ({"code": _str, "message": _str}, {"cell_id": _str}),
    "busy": ({}, {"holder": _object}),
    "done": ({"ok": _bool, "exit_code": _int}, {}),
}
"""Per event type: the fields a reader relies on and their checks. Unknown fields are kept (the
format may grow), but every known field must have its type."""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise ValueError(f"{text} is out of range")
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")
"""JSON's \\uD800 escapes decode to lone surrogates: not text (UTF-8 cannot encode them)."""


def _nested_problem(obj: object) -> str | None:
    """What is wrong with any value inside `obj`, or None: nesting past MAX_DEPTH, an integer
    outside int64 (anywhere: the controller stores, sums and converts these to float later), or
    a string or key with a lone surrogate (the store could not write it)."""
    stack: list[tuple[object, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if any(_SURROGATE.search(key) for key in value):
                return "has a key that is not valid Unicode (a lone surrogate)"
            children: Iterable[object] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            if _is_int(value) and not -INT64_MAX - 1 <= cast(int, value) <= INT64_MAX:
                return f"holds the integer {_short(value)}, outside int64"
            if isinstance(value, str) and _SURROGATE.search(value):
                return "holds a string that is not valid Unicode (a lone surrogate)"
            continue
        if depth >= MAX_DEPTH:
            return f"nests deeper than {MAX_DEPTH} levels"
        stack.extend((child, depth + 1) for child in children)
    return None


def validate_event(obj: object, text: str = "") -> Event:
    """`obj` (parsed JSON) as a checked event. Raises ProtocolError naming the first bad field."""
    line = text or _short(obj)
    if not isinstance(obj, dict):
        raise ProtocolError("not a JSON object", line)
    schema = obj.get("schema")
    if not _is_int(schema):
        raise ProtocolError("missing or non-integer 'schema'", line)
    if schema != SCHEMA:
        raise ProtocolError(f"schema {schema} is not the supported schema {SCHEMA}", line)
    event_type = obj.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise ProtocolError(f"unknown event type {_short(event_type)}", line)
    required, optional = _FIELDS[event_type]
    missing = [name for name in required if name not in obj]
    if missing:
        raise ProtocolError(f"{event_type} event lacks {', '.join(missing)}", line)
    for name, check in (*required.items(), *optional.items()):
        if name in obj:
            problem = check(obj[name])
            if problem is not None:
                raise ProtocolError(f"{event_type}.{name} {problem}", line)
    problem = _nested_problem(obj)
    if problem is not None:
        raise ProtocolError(f"{event_type} event {problem}", line)
    return obj


def decode_event(line: str | bytes) -> Event:
    """Parse and check one line from an agent.

    Raises ProtocolError, and only ProtocolError, for anything that is not a valid event: not
    JSON, nested too deep, numbers out of range (1e400, NaN, ints past int64 where an int64 is
    stored, past Python's digit limit anywhere), wrong field types (a bool is not an int), missing
    fields, lines over MAX_LINE_BYTES.
    """
    try:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes | bytearray) else str(line)
        text = text.strip()
        if len(text) > MAX_LINE_BYTES:
            raise ProtocolError(f"line longer than {MAX_LINE_BYTES} bytes", text)
        try:
            obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"not JSON ({exc.msg})", text) from None
        except RecursionError:
            raise ProtocolError("JSON nested too deeply", text) from None
        except (ValueError, OverflowError) as exc:  # huge ints (digit limit), 1e400, NaN
            raise ProtocolError(f"bad JSON number ({exc})", text) from None
        return validate_event(obj, text)
    except ProtocolError:
        raise
    except Exception as exc:  # whatever else a hostile line triggers is still only a bad line
        raise ProtocolError(f"unreadable line ({type(exc).__name__})", _short(line)) from None


def encode_event(event_type: str, **fields: Any) -> str:
    """One event as a JSON line (without the newline). Raises ValueError on an unknown type."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    return json.dumps(
        {"schema": SCHEMA, "type": event_type, **fields}, separators=(",", ":"), allow_nan=False
    )


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
