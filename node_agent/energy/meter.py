"""The energy of one worker run, as the agent measures it around the worker.

For each (cell, run) the agent:

1. starts the spec's reader (`select_reader`: a named one, or ``auto``) as its own child;
2. records an idle baseline with that reader at that interval, just before the worker starts,
   for the shortest window the arithmetic publishes (plus a margin);
3. lets the worker run (a thread moves the readings into the trace meanwhile); the worker
   reports its measure and sustained windows on the same monotonic clock
   (`time.monotonic_ns()` is system-wide) with the inferences in each;
4. waits until the readings cover the last window, computes each window's `RunEnergy`
   (joules per inference net of idle, average watts) and stops the reader.

The reader is stopped however the run ends (`close` in a ``finally``, the agent's signal
handling, the exit hook of `node_agent.energy.child`). A reader that fails costs the cell its
energy figures, never its latency: the failure is recorded as the run's energy status.

`cell_energy` turns the per-run records into the cell's published energy: joules per inference
per run with the run-level interval across runs (as for latency), average watts, and the
reader, thermal state and power source the figures were taken under.

Stdlib only: part of the agent core.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from node_agent.energy.arithmetic import IdleBaseline, min_window_ns
from node_agent.energy.auto import Selection, select_reader
from node_agent.energy.base import EnergyReader, ReaderError, ReaderUnavailable
from node_agent.energy.trace import EnergyTrace

CADENCE_ENV: Final = "FLEET_AGENT_ENERGY_CADENCE_MS"
"""The publish cadence of this node's power source, when known to be shorter than the default
(some chips publish their IOReport energy every sample; a fake reader in tests does)."""
IDLE_MARGIN: Final = 1.2
"""The idle window is this much longer than the shortest publishable one (stamps jitter)."""
PUBLISHED_RAILS: Final = ("soc", "system")
"""The rails whose figures a cell publishes at its top level (every rail stays in per_run)."""


def cadence_override_ms() -> int | None:
    raw = os.environ.get(CADENCE_ENV)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


def _with_cadence(reader: EnergyReader, cadence_ms: int | None) -> EnergyReader:
    if cadence_ms is not None:
        reader.publish_cadence_ms = cadence_ms
        reader.note("publish_cadence_override_ms", cadence_ms)
    return reader


class RunMeter:
    """One reader around one worker run. Use as a context manager: the reader always stops."""

    def __init__(self, choice: str, interval_ms: int, stop: threading.Event) -> None:
        self.choice = choice
        self.interval_ms = interval_ms
        self.stop_event = stop
        self.selection: Selection | None = None
        self.trace: EnergyTrace | None = None
        self.idle: IdleBaseline | None = None
        self.status = "ok"
        self.error: str | None = None
        self._collector: threading.Thread | None = None
        self._collecting = threading.Event()
        self._collect_error: ReaderError | None = None

    def __enter__(self) -> RunMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop_collecting()
        if self.selection is not None and self.selection.reader is not None:
            self.selection.reader.stop()

    def reader_pids(self) -> list[int]:
        """The reader's process id when it is a child process (none for ioreport)."""
        reader = self.selection.reader if self.selection is not None else None
        pid = getattr(reader, "pid", None)
        return [pid] if isinstance(pid, int) else []

    def start_collecting(self) -> None:
        """Move readings from the reader into the trace while the worker runs, so a long run at
        a short interval never fills the reader's own queue (a thread: the agent waits on the
        worker meanwhile)."""
        if self.trace is None or self.status != "ok" or self._collector is not None:
            return
        trace = self.trace
        self._collecting.set()

        def collect() -> None:
            try:
                while self._collecting.is_set():
                    trace.collect(0.25)
            except ReaderError as exc:
                self._collect_error = exc

        self._collector = threading.Thread(target=collect, name="energy-collector", daemon=True)
        self._collector.start()

    def _stop_collecting(self) -> None:
        self._collecting.clear()
        if self._collector is not None:
            self._collector.join(timeout=5)
            self._collector = None

    def _fail(self, status: str, message: str) -> None:
        self.status, self.error = status, message
        self.close()

    def start_and_idle(self) -> None:
        """Start the reader and record the idle baseline (returns early when stopped)."""
        from node_agent.energy.auto import make_reader

        cadence = cadence_override_ms()
        try:
            self.selection = select_reader(
                self.choice,
                self.interval_ms,
                factory=lambda name, ms: _with_cadence(make_reader(name, ms), cadence),
            )
        except (ReaderError, ReaderUnavailable, OSError) as exc:
            self._fail("energy_reader_error", str(exc))
            return
        reader = self.selection.reader
        if reader is None:
            skipped = "; ".join(f"{k}: {v}" for k, v in self.selection.skipped.items())
            self._fail("energy_unavailable", f"no power reader works here ({skipped})")
            return
        self.trace = EnergyTrace(reader, self.selection.first_samples)
        info = reader.info()
        idle_ns = int(min_window_ns(info.interval_ms, info.publish_cadence_ms, info.kind) * IDLE_MARGIN)
        start = time.monotonic_ns()
        end = start + idle_ns
        try:
            while not self.stop_event.is_set():
                remaining = end - time.monotonic_ns()
                if remaining <= 0:
                    break
                self.trace.collect(min(remaining / 1e9, 0.25))
            if self.stop_event.is_set():
                return
            if not self.trace.wait_covered(end, self.trace.coverage_timeout_s()):
                self._fail("energy_no_samples", "the reader stopped delivering during the idle baseline")
                return
        except ReaderError as exc:
            self._fail("energy_reader_error", str(exc))
            return
        self.idle = self.trace.idle(start, end)
        # The worker's windows come later: what the idle window needed is kept, the rest dropped.
        self.trace.discard_before(start)

    def finish(self, windows: Mapping[str, Any] | None) -> dict[str, Any]:
        """Every window's energy (after waiting for the readings to cover them), as the run's
        energy record; the reader is stopped."""
        record: dict[str, Any] = {"status": self.status}
        if self.selection is not None:
            record["selection"] = self.selection.record()
        if self.idle is not None:
            record["idle"] = self.idle.to_dict()
        try:
            self._stop_collecting()
            if self._collect_error is not None:
                self.status, self.error = "energy_reader_error", str(self._collect_error)
                record["status"] = self.status
            if self.status != "ok" or self.trace is None:
                record["error"] = self.error
                return record
            spans = _windows(windows)
            if not spans:
                record["status"] = "energy_no_window"
                return record
            last_end = max(end for _, end, _ in spans.values())
            try:
                covered = self.trace.wait_covered(last_end, self.trace.coverage_timeout_s())
            except ReaderError as exc:
                record.update(status="energy_reader_error", error=str(exc))
                return record
            if not covered:
                record.update(status="energy_no_samples", error="the readings never covered the run's end")
                return record
            for name, (start, end, inferences) in spans.items():
                record[name] = self.trace.run(start, end, inferences, self.idle).to_dict()
            record["reader"] = self.trace.info().to_dict()
            return record
        finally:
            self.close()


def _windows(raw: Mapping[str, Any] | None) -> dict[str, tuple[int, int, int]]:
    """The worker's windows {phase: (start_ns, end_ns, inferences)} that can be measured."""
    spans: dict[str, tuple[int, int, int]] = {}
    for name, window in (raw or {}).items():
        if not isinstance(window, Mapping):
            continue
        start, end, count = window.get("start_ns"), window.get("end_ns"), window.get("inferences")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end, count)):
            assert isinstance(start, int) and isinstance(end, int) and isinstance(count, int)
            if end > start and count > 0:
                spans[str(name)] = (start, end, count)
    return spans


# --- the cell's energy ---------------------------------------------------------------------------


def _published(run: Mapping[str, Any], window: str) -> Mapping[str, Any] | None:
    figures = run.get(window)
    if isinstance(figures, Mapping) and figures.get("status") == "ok":
        return figures
    return None


def _statuses(run: Mapping[str, Any]) -> list[str]:
    """Why a run published no energy: its own status, else its windows' statuses."""
    if run.get("status") != "ok":
        return [str(run.get("status"))]
    return [str(run[w].get("status")) for w in ("measure", "sustained") if isinstance(run.get(w), Mapping)]


def _run_record(run: object, record: Mapping[str, Any]) -> dict[str, Any]:
    """One run's energy as published: status, idle baseline, each window (reader stated once)."""
    out: dict[str, Any] = {"run": run, "status": record.get("status")}
    if record.get("error"):
        out["error"] = record["error"]
    idle = record.get("idle")
    if isinstance(idle, Mapping):
        out["idle"] = {k: idle.get(k) for k in ("status", "watts", "seconds", "missing")}
    for window in ("measure", "sustained"):
        figures = record.get(window)
        if isinstance(figures, Mapping):
            out[window] = {k: v for k, v in figures.items() if k != "reader"}
    return out


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def rail_interval(values: Sequence[float]) -> dict[str, Any] | None:
    """One rail's joules per inference over runs: the estimate and its run-level interval.

    The same t-interval on the logs as the latency's run-level interval for two or more
    positive values; one value is published alone (no interval); a net figure at or below zero
    (below idle) leaves the interval out and the plain mean as the estimate.
    """
    from node_agent.stats import t_interval_of_logs

    if not values:
        return None
    interval = t_interval_of_logs(values, 0.95) if len(values) >= 2 else None
    if interval is None:
        mean = _mean(values)
        return {"estimate": mean, "lo": None, "hi": None, "n_runs": len(values), "values": list(values)}
    return {
        "estimate": interval["estimate"],
        "lo": interval["lo"],
        "hi": interval["hi"],
        "n_runs": len(values),
        "values": list(values),
        "rel_halfwidth": interval["rel_halfwidth"],
        "interval_method": "t_log_runs",
    }


def cell_energy(
    per_run: Sequence[Mapping[str, Any]], choice: str, conditions_before: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The cell's energy from its runs' energy records (``per_run[i]["energy"]``).

    The measure windows of all runs are the sample for the run-level interval; where none of
    them is long enough to publish, the sustained window (one run) is used instead and says so.
    """
    runs = [p.get("energy") for p in per_run]
    records = [r for r in runs if isinstance(r, Mapping)]
    conditions = conditions_before or {}
    result: dict[str, Any] = {
        "choice": choice,
        "thermal_state": conditions.get("thermal_pressure"),
        "power_source": conditions.get("power_source"),
    }
    reader = next((r.get("reader") for r in records if isinstance(r.get("reader"), Mapping)), None)
    if reader is None:
        reader = next(
            (
                r["selection"]["reader"]
                for r in records
                if isinstance(r.get("selection"), Mapping) and r["selection"].get("reader")
            ),
            None,
        )
    result["reader"] = reader
    skipped = next(
        (r["selection"].get("skipped") for r in records if isinstance(r.get("selection"), Mapping)), None
    )
    if skipped:
        result["skipped"] = skipped
    result["per_run"] = [_run_record(p.get("run"), r) for p, r in zip(per_run, runs, strict=True) if r]
    window = "measure"
    chosen = [f for f in (_published(r, "measure") for r in records) if f is not None]
    if not chosen:
        window = "sustained"
        chosen = [f for f in (_published(r, "sustained") for r in records) if f is not None]
    if not chosen:
        statuses = {status for r in records for status in _statuses(r)}
        result["status"] = (
            "energy_too_short"
            if "energy_too_short" in statuses
            else min(statuses, default="energy_no_window")
        )
        errors = [str(r["error"]) for r in records if r.get("error")]
        if errors:
            result["error"] = errors[0]
        return result
    result["status"] = "ok"
    result["window"] = window
    result["n_runs"] = len(chosen)
    result["seconds"] = [f.get("seconds") for f in chosen]
    result["inferences"] = [f.get("inferences") for f in chosen]
    per_inference: dict[str, Any] = {}
    watts: dict[str, float] = {}
    idle: dict[str, float] = {}
    for rail in PUBLISHED_RAILS:
        values = [
            f["joules_per_inference"][rail] for f in chosen if rail in f.get("joules_per_inference", {})
        ]
        if len(values) == len(chosen):
            figure = rail_interval(values)
            if figure is not None:
                per_inference[rail] = figure
        rail_watts = [f["avg_watts"][rail] for f in chosen if rail in f.get("avg_watts", {})]
        if len(rail_watts) == len(chosen):
            mean_watts = _mean(rail_watts)
            if mean_watts is not None:
                watts[rail] = mean_watts
        rail_idle = [f["idle_watts"][rail] for f in chosen if rail in f.get("idle_watts", {})]
        if len(rail_idle) == len(chosen):
            mean_idle = _mean(rail_idle)
            if mean_idle is not None:
                idle[rail] = mean_idle
    gross: dict[str, float] = {}
    for rail in PUBLISHED_RAILS:
        terms = [
            f["joules"][rail] / f["inferences"]
            for f in chosen
            if rail in f.get("joules", {}) and f.get("inferences")
        ]
        if len(terms) == len(chosen):
            mean_gross = _mean(terms)
            if mean_gross is not None:
                gross[rail] = mean_gross
    result["j_per_inference"] = per_inference
    result["gross_j_per_inference"] = gross
    result["avg_watts"] = watts
    result["idle_watts"] = idle
    result["soc_rails"] = list(chosen[0].get("soc_rails", []))
    result["edge_uncertainty"] = max(float(f.get("edge_uncertainty") or 0.0) for f in chosen)
    result["flags"] = sorted({str(flag) for f in chosen for flag in f.get("flags", [])})
    return result
