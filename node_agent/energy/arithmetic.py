"""Energy over a window, the idle baseline, joules per inference: the arithmetic, pure.

Power readings (`PowerSample`): each is the average over the interval that ends at its
arrival stamp, i.e. (previous stamp, this stamp]; the first of a stream covers its own
``interval_ns`` (or the requested interval) before its stamp. Energy over [start, end] is
the sum of P * dt of every interval, clipped to the window.

Counter readings (`EnergyDelta`): joules counted over (span_start, t]. Energy over the window
is the sum of the deltas, a delta whose span straddles an edge apportioned by the share of
its span inside the window (power assumed even within one span).

A rail is published for a window only if its readings cover the whole window; "soc" is the
sum of `SOC_RAILS` that are covered (the list is recorded), "system" is the reader's
whole-machine figure where it has one. A window shorter than `MIN_READER_INTERVALS` reader
intervals or a number of publish cadences is `energy_too_short` and publishes nothing: the
sustained phase is where energy is meaningful. The number of cadences depends on the kind of
reader. A power reader built on lumpy IOReport channels (macmon, mactop) can misplace up to
one publication's energy at each edge of a window, so it needs `MIN_CADENCES_POWER` of them
(error at most 2/10 of the window, far less over a sustained run); a counter reader's deltas
are apportioned over their own spans, so `MIN_CADENCES_COUNTER` suffice. Each result carries
``edge_uncertainty``, that worst-case share (2 cadences / window) for power readers.

Joules per inference, per run: (E_window - P_idle * T) / inferences, with P_idle measured
just before the cell by the same reader at the same interval. The run-level interval across
runs is computed by the caller from these per-run values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from node_agent.energy.base import SOC_RAILS, EnergyDelta, PowerSample, ReaderInfo, Sample

MIN_READER_INTERVALS: Final = 5
MIN_CADENCES_POWER: Final = 10
MIN_CADENCES_COUNTER: Final = 3
NS_PER_S: Final = 1_000_000_000

Status = Literal["ok", "energy_too_short", "energy_incomplete", "energy_no_samples"]


@dataclass(frozen=True)
class WindowEnergy:
    """Joules per covered rail over [start_ns, end_ns]; ``missing`` lists rails not covered."""

    start_ns: int
    end_ns: int
    joules: dict[str, float]
    missing: tuple[str, ...] = ()
    readings: int = 0

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def soc_rails(self) -> tuple[str, ...]:
        return tuple(r for r in SOC_RAILS if r in self.joules)

    def with_soc(self) -> dict[str, float]:
        """The rails plus ``soc`` (the covered SoC rails summed), when at least one is covered."""
        result = dict(self.joules)
        if self.soc_rails:
            result["soc"] = math.fsum(self.joules[r] for r in self.soc_rails)
        return result


def min_window_ns(interval_ms: int, publish_cadence_ms: int, kind: str = "power") -> int:
    """The shortest window whose energy is published for a reader of this interval, publish
    cadence and kind ("power" or "counter")."""
    cadences = MIN_CADENCES_COUNTER if kind == "counter" else MIN_CADENCES_POWER
    return (
        max(MIN_READER_INTERVALS * interval_ms, cadences * max(publish_cadence_ms, interval_ms)) * 1_000_000
    )


def edge_uncertainty(duration_ns: int, info: ReaderInfo) -> float:
    """Worst-case share of a window's energy a lumpy power reader can misplace at its edges
    (one publication each); 0 for counters, whose spans are apportioned."""
    if info.kind == "counter" or duration_ns <= 0:
        return 0.0
    return min(1.0, 2 * max(info.publish_cadence_ms, info.interval_ms) * 1_000_000 / duration_ns)


def power_window_energy(
    samples: Iterable[PowerSample], start_ns: int, end_ns: int, *, first_interval_ns: int
) -> WindowEnergy:
    """Sum of P * dt clipped to [start_ns, end_ns] for a power-reading stream."""
    if end_ns <= start_ns:
        raise ValueError(f"empty window [{start_ns}, {end_ns}]")
    ordered = sorted(samples, key=lambda s: s.t_ns)
    watt_ns: dict[str, list[float]] = {}  # W * ns terms, summed exactly (fsum) at the end
    covered: dict[str, int] = {}
    rails: set[str] = set()
    readings = 0
    previous_t: int | None = None
    for sample in ordered:
        # (previous stamp, this stamp]; the first reading covers its own interval.
        begin = sample.t_ns - (sample.interval_ns or first_interval_ns) if previous_t is None else previous_t
        previous_t = sample.t_ns
        rails.update(sample.watts)
        overlap = min(sample.t_ns, end_ns) - max(begin, start_ns)
        if overlap <= 0:
            continue
        readings += 1
        for rail, watts in sample.watts.items():
            watt_ns.setdefault(rail, []).append(watts * overlap)
            covered[rail] = covered.get(rail, 0) + overlap
    joules = {rail: math.fsum(terms) / NS_PER_S for rail, terms in watt_ns.items()}
    window = end_ns - start_ns
    complete = {r: j for r, j in joules.items() if covered.get(r, 0) >= window}
    missing = tuple(sorted(rails - set(complete)))
    return WindowEnergy(start_ns, end_ns, complete, missing, readings)


def counter_window_energy(deltas: Iterable[EnergyDelta], start_ns: int, end_ns: int) -> WindowEnergy:
    """Sum of counter deltas in [start_ns, end_ns], straddling deltas apportioned by time.

    A rail is covered when each of its channels has a span starting at or before the window
    and one ending at or after it (spans of one channel are contiguous by construction).
    """
    if end_ns <= start_ns:
        raise ValueError(f"empty window [{start_ns}, {end_ns}]")
    parts: dict[str, list[float]] = {}
    first_start: dict[tuple[str, str], int] = {}
    last_end: dict[tuple[str, str], int] = {}
    readings = 0
    for delta in deltas:
        key = (delta.rail, delta.channel)
        first_start[key] = min(first_start.get(key, delta.span_start_ns), delta.span_start_ns)
        last_end[key] = max(last_end.get(key, delta.t_ns), delta.t_ns)
        span = delta.t_ns - delta.span_start_ns
        if span <= 0:  # an instantaneous delta belongs to the window that holds its stamp
            share = 1.0 if start_ns < delta.t_ns <= end_ns else 0.0
        else:
            overlap = min(delta.t_ns, end_ns) - max(delta.span_start_ns, start_ns)
            share = overlap / span if overlap > 0 else 0.0
        if share > 0:
            readings += 1
        parts.setdefault(delta.rail, []).append(delta.joules * share if share > 0 else 0.0)
    joules = {rail: math.fsum(terms) for rail, terms in parts.items()}
    rails = {rail for rail, _ in first_start}
    uncovered = {
        rail
        for (rail, channel), begin in first_start.items()
        if begin > start_ns or last_end[(rail, channel)] < end_ns
    }
    complete = {r: j for r, j in joules.items() if r not in uncovered}
    return WindowEnergy(start_ns, end_ns, complete, tuple(sorted(rails - set(complete))), readings)


def window_energy(
    samples: Sequence[Sample], start_ns: int, end_ns: int, *, first_interval_ns: int
) -> WindowEnergy:
    """`power_window_energy` or `counter_window_energy`, by the kind of the samples."""
    power = [s for s in samples if isinstance(s, PowerSample)]
    counters = [s for s in samples if isinstance(s, EnergyDelta)]
    if power and counters:
        raise ValueError("a window mixes power readings and counter deltas (two readers?)")
    if counters:
        return counter_window_energy(counters, start_ns, end_ns)
    return power_window_energy(power, start_ns, end_ns, first_interval_ns=first_interval_ns)


def _status_of(window: WindowEnergy, info: ReaderInfo) -> Status:
    if window.duration_ns < min_window_ns(info.interval_ms, info.publish_cadence_ms, info.kind):
        return "energy_too_short"
    if window.readings == 0 and not window.joules:
        return "energy_no_samples"
    if not window.soc_rails and "system" not in window.joules:
        return "energy_incomplete"
    return "ok"


@dataclass(frozen=True)
class IdleBaseline:
    """Average idle watts per rail (and ``soc``), measured by one reader over [start, end]."""

    status: Status
    watts: dict[str, float]
    start_ns: int
    end_ns: int
    reader: dict[str, Any]
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "watts": dict(self.watts),
            "seconds": (self.end_ns - self.start_ns) / NS_PER_S,
            "reader": dict(self.reader),
            "missing": list(self.missing),
        }


def idle_baseline(samples: Sequence[Sample], start_ns: int, end_ns: int, info: ReaderInfo) -> IdleBaseline:
    """P_idle over the idle window before a cell; it obeys the same minimum-window rule."""
    window = window_energy(samples, start_ns, end_ns, first_interval_ns=info.interval_ms * 1_000_000)
    status = _status_of(window, info)
    seconds = window.duration_ns / NS_PER_S
    watts = {r: j / seconds for r, j in window.with_soc().items()} if status == "ok" else {}
    return IdleBaseline(status, watts, start_ns, end_ns, info.to_dict(), window.missing)


@dataclass(frozen=True)
class RunEnergy:
    """One run's energy: published only when ``status`` is "ok".

    ``joules`` and ``avg_watts`` are gross (idle included); ``joules_per_inference`` is net of
    the idle baseline, present only when the baseline is usable and came from the same reader.
    """

    status: Status
    seconds: float
    inferences: int
    reader: dict[str, Any]
    joules: dict[str, float] = field(default_factory=dict)
    avg_watts: dict[str, float] = field(default_factory=dict)
    idle_watts: dict[str, float] = field(default_factory=dict)
    joules_per_inference: dict[str, float] = field(default_factory=dict)
    soc_rails: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    edge_uncertainty: float = 0.0

    @property
    def published(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "seconds": self.seconds,
            "inferences": self.inferences,
            "reader": dict(self.reader),
            "joules": dict(self.joules),
            "avg_watts": dict(self.avg_watts),
            "idle_watts": dict(self.idle_watts),
            "joules_per_inference": dict(self.joules_per_inference),
            "soc_rails": list(self.soc_rails),
            "flags": list(self.flags),
            "edge_uncertainty": self.edge_uncertainty,
        }


def _same_reader(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("name", "version", "interval_ms"))


def run_energy(
    samples: Sequence[Sample],
    start_ns: int,
    end_ns: int,
    inferences: int,
    info: ReaderInfo,
    idle: IdleBaseline | None,
) -> RunEnergy:
    """Energy of one run's window [start_ns, end_ns] in which `inferences` inferences ran.

    Flags: ``energy_no_idle`` (no usable baseline: gross figures only), ``idle_other_reader``
    (the baseline came from another reader or interval: not subtracted), ``below_idle`` (a
    net figure came out negative: noise larger than the work's own energy).
    """
    if inferences <= 0:
        raise ValueError(f"inferences must be positive, not {inferences}")
    window = window_energy(samples, start_ns, end_ns, first_interval_ns=info.interval_ms * 1_000_000)
    seconds = window.duration_ns / NS_PER_S
    status = _status_of(window, info)
    reader = info.to_dict()
    if status != "ok":
        return RunEnergy(status, seconds, inferences, reader)
    gross = window.with_soc()
    flags: list[str] = []
    per_inference: dict[str, float] = {}
    idle_watts: dict[str, float] = {}
    if idle is None or idle.status != "ok":
        flags.append("energy_no_idle")
    elif not _same_reader(idle.reader, reader):
        flags.append("idle_other_reader")
    else:
        idle_watts = dict(idle.watts)
        for rail, joules in gross.items():
            if rail in idle.watts:
                per_inference[rail] = (joules - idle.watts[rail] * seconds) / inferences
        if any(v < 0 for v in per_inference.values()):
            flags.append("below_idle")
    if window.missing:
        flags.append("rails_missing:" + ",".join(window.missing))
    return RunEnergy(
        status="ok",
        seconds=seconds,
        inferences=inferences,
        reader=reader,
        joules=gross,
        avg_watts={rail: joules / seconds for rail, joules in gross.items()},
        idle_watts=idle_watts,
        joules_per_inference=per_inference,
        soc_rails=window.soc_rails,
        flags=tuple(flags),
        edge_uncertainty=edge_uncertainty(window.duration_ns, info),
    )
