"""What the scheduler tells its front end (`Progress`), and the order checks on agent events.

`decode_event` (node_agent.protocol) checks each line alone; `EventOrder` checks the stream of one
job: nothing about cells before `hello`, no samples for a cell before its `cell_started` or after
its `cell_result`, one `cell_started` and one `cell_result` per cell, only the job's own cells.
`check_content` checks what a reader relies on inside an event, and `SampleBudget` what the
spec allows a job to send (docs/ROBUSTNESS.md). A violation is the node's protocol error
(`BadEvent`), never the controller's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from fleet_tui.config.spec import MeasureSpec

CELL_EVENTS = frozenset({"cell_started", "samples", "thermal", "cell_result", "progress"})
"""Events that are about the job's cells."""

BEFORE_HELLO = frozenset({"error", "warning", "done"})
"""All an agent may say before its `hello`: why it cannot start (a tampered archive, a bad
command), then `done` with ok = false. Everything else before `hello` is refused."""


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
        if not self.hello and (kind not in BEFORE_HELLO or (kind == "done" and event["ok"])):
            raise BadEvent(f"{kind}{' ok' if kind == 'done' else ''} before hello")
        cell_id = event.get("cell_id")
        if cell_id is None or kind not in CELL_EVENTS:
            return
        if cell_id not in self.cell_ids:
            raise BadEvent(f"cell_id {_short(cell_id)} is not in this job")
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


SAMPLE_MARGIN: Final = 1.1
SAMPLE_SLACK: Final = 64
"""A node may exceed a sample ceiling by 10 % + 64 samples (or seconds: DURATION_SLACK_S) before
the excess counts as a violation: the agent stops between samples and flushes in batches."""
DURATION_SLACK_S: Final = 10.0
STABILITY_WINDOW: Final = 40
"""Warmup samples the agent takes beyond warmup_max (its 2 x 20 stability window)."""
MAX_SAMPLE_RATE: Final = 20_000.0
"""Samples per second the sustained phase may stream at most, unless the spec's own
max_samples / max_duration_s is faster: a latency-mode call takes >= 200 us (else the agent
batches calls, >= 10 ms a sample), so an honest node stays under 5,000/s."""
THERMAL_SLACK: Final = 50
MAX_MESSAGES: Final = 1000
"""Warnings and errors one job may send: each is shown to the operator, and errors are kept."""


class SampleBudget:
    """What one job may send per cell and run, from the spec: a node streaming past it is
    filling the controller's disk, not measuring (`check` raises BadEvent).

    Per run (0 <= run < runs): warmup <= warmup_max + the stability window; measure <= max_samples
    and, without its longest sample, <= max_duration_s; sustained <= its duration and rate; thermal
    points <= two per 5 s of sustained phase and wait for nominal. Each with SAMPLE_MARGIN and slack.
    Per job: at most MAX_MESSAGES warnings and errors.
    """

    def __init__(self, measure: MeasureSpec) -> None:
        self.measure = measure
        self.counts: dict[tuple[str, int, str], int] = {}
        self.sums: dict[tuple[str, int, str], int] = {}
        self.longest: dict[tuple[str, int, str], int] = {}
        self.thermal: dict[tuple[str | None, int | None], int] = {}
        self.messages = 0

    def _ceilings(self) -> dict[str, tuple[float, float | None]]:
        """phase -> (most samples, most seconds or None)."""
        m = self.measure
        sustained_s = m.sustained_minutes * 60.0
        rate = max(MAX_SAMPLE_RATE, m.max_samples / m.max_duration_s)
        return {
            "warmup": (m.warmup_max + STABILITY_WINDOW, None),
            "measure": (m.max_samples, m.max_duration_s),
            "sustained": (m.max_samples + sustained_s * rate, sustained_s),
        }

    def check(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        if kind in ("warning", "error"):
            self.messages += 1
            if self.messages > MAX_MESSAGES:
                raise BadEvent(f"more than {MAX_MESSAGES} warnings and errors in one job")
        if kind == "thermal":
            self._check_thermal(event)
        if kind != "samples":
            return
        m = self.measure
        cell_id, run, phase, ns = event["cell_id"], event["run"], event["phase"], event["ns"]
        if run >= m.runs:
            raise BadEvent(f"samples for run {run} of cell {cell_id}, but the spec has runs = {m.runs}")
        key = (cell_id, run, phase)
        count = self.counts[key] = self.counts.get(key, 0) + len(ns)
        total = self.sums[key] = self.sums.get(key, 0) + sum(ns)
        longest = self.longest[key] = max(self.longest.get(key, 0), max(ns, default=0))
        most_n, most_s = self._ceilings()[phase]
        if count > most_n * SAMPLE_MARGIN + SAMPLE_SLACK:
            ceiling = "max_samples" if phase == "measure" else "the spec's ceiling"
            raise BadEvent(
                f"{count} {phase} samples for run {run} of cell {cell_id}: more than {ceiling} "
                f"({most_n:.0f}) allows"
            )
        # The agent checks its clock after each sample: all but the last one fit the duration.
        if most_s is not None and (total - longest) / 1e9 > most_s * SAMPLE_MARGIN + DURATION_SLACK_S:
            name = "max_duration_s" if phase == "measure" else "sustained_minutes"
            raise BadEvent(
                f"{phase} samples for run {run} of cell {cell_id} add up to {total / 1e9:.1f} s: "
                f"more than {name} ({most_s:g} s) allows"
            )

    def _check_thermal(self, event: Mapping[str, Any]) -> None:
        m = self.measure
        key = (event.get("cell_id"), event.get("run"))
        count = self.thermal[key] = self.thermal.get(key, 0) + 1
        most = 2 * (m.sustained_minutes * 60.0 + m.wait_nominal_s) / 5.0 + THERMAL_SLACK
        if count > most:
            raise BadEvent(f"{count} thermal points for one run of one cell: more than the spec allows")


_SUMMARY_NUMBERS = ("p50", "p95", "p99", "mean", "duration_s", "tokens_per_s")
_SUMMARY_COUNTS = ("n", "loops")
_SUMMARY_OBJECTS = (
    "ci95", "conditions", "drift", "numeric", "run_level", "compute_plan", "burst", "sustained",
    "pooled", "warmup", "cold_start",
)  # fmt: skip


def _is_number(value: object) -> bool:
    # decode_event has made every float finite and every int an int64.
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_content(event: Mapping[str, Any]) -> None:
    """What `decode_event` cannot judge from the field types alone, checked before anything of
    the event is stored or shown: raises BadEvent.

    A sample batch's timestamps match its durations one to one; a cell summary's figures that the
    controller reads (gates, progress lines) have the types it reads them as, and none is negative.
    """
    kind = event["type"]
    if kind == "samples":
        t_ns = event.get("t_ns") or []
        if t_ns and len(t_ns) != len(event["ns"]):
            raise BadEvent(f"{len(event['ns'])} samples but {len(t_ns)} timestamps in one batch")
    elif kind == "cell_result":
        summary = event.get("summary") or {}
        for name in _SUMMARY_NUMBERS:
            value = summary.get(name)
            if value is not None and not (_is_number(value) and value >= 0):
                raise BadEvent(f"summary.{name} = {_short(value)} is not a non-negative number")
        for name in _SUMMARY_COUNTS:
            value = summary.get(name)
            if value is not None and not (
                isinstance(value, int) and not isinstance(value, bool) and value >= 0
            ):
                raise BadEvent(f"summary.{name} = {_short(value)} is not a non-negative integer")
        for name in _SUMMARY_OBJECTS:
            if summary.get(name) is not None and not isinstance(summary[name], dict):
                raise BadEvent(f"summary.{name} is not an object")
        per_run = summary.get("per_run")
        if per_run is not None and not (
            isinstance(per_run, list) and all(isinstance(r, dict) for r in per_run)
        ):
            raise BadEvent("summary.per_run is not a list of objects")
        flags = summary.get("flags")
        if flags is not None and not (isinstance(flags, list) and all(isinstance(f, str) for f in flags)):
            raise BadEvent("summary.flags is not a list of strings")
        ci95 = summary.get("ci95") or {}
        for name, bounds in ci95.items():
            if bounds is not None and not (
                isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)
            ):
                raise BadEvent(f"summary.ci95.{name} is not a [low, high] pair of numbers")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


class Progress:
    """Base: a sink for scheduler events. Subclasses render; this one discards."""

    def emit(self, kind: str, *, node: str | None = None, message: str = "", **fields: Any) -> None:
        return None

    def close(self) -> None:
        return None
