"""The measurement harness for one run of one cell (the method of docs/MEASUREMENT.md, step by step).

The engine owns the timed region (pyperf's ``bench_time_func`` shape): ``run(loops)`` returns
the elapsed nanoseconds of ``loops`` back-to-back calls, measured with ``perf_counter_ns`` and,
for MLX, ending with ``mx.eval``. The harness around it:

1. picks the mode: **latency** (one inference per sample) or, for calls under 200 µs,
   **micro-op** (``loops`` doubled until one sample takes >= 10 ms; a sample is the raw elapsed
   time of ``loops`` calls, and statistics divide by ``loops`` as floats; no p99 in this mode);
2. warms up: at least ``warmup_min`` samples, then pyperf's stability check on the next 2x20
   samples (`stats.warmup_stable`), sliding by one sample until it passes, or until
   ``warmup_max`` samples before the window or ``max_duration_s`` of warmup have passed
   (``warmup_unconverged``); warmup samples are kept apart;
3. measures until the floors (``min_samples``, 662 when p99 is asked, AND ``min_duration_s``)
   are met, then every ``check_every`` samples looks at the p95's 99%-rank CI (widened when the
   run is autocorrelated, `stats.p95_ci_converged`) and stops once two consecutive looks find it
   within ``epsilon``, or at the ceilings ``max_duration_s`` / ``max_samples``;
4. optionally keeps sampling for ``sustained_s`` (sustained mode), reading the node's conditions
   every 5 s and tagging sample batches with the latest thermal state, then computes drift.

Raw elapsed times go into preallocated ``array('q')`` buffers and are handed to ``sink`` (which
writes a ``samples`` event: raw ns of ``loops`` calls, integers) every `FLUSH_EVERY_SAMPLES`
samples or 250 ms, always *between* samples, never inside the engine's timed region.

Stdlib only: this module runs in the agent core; numbers come from `node_agent.stats`.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from node_agent import stats

_T = TypeVar("_T")

MICRO_OP_THRESHOLD_NS = 200_000
"""Calls shorter than this are measured in micro-op mode (docs/MEASUREMENT.md, "Modes")."""
MICRO_OP_TARGET_NS = 10_000_000
"""Micro-op mode doubles ``loops`` until one sample takes at least this long (10 ms)."""
MAX_LOOPS = 1 << 24
WARMUP_WINDOW = 40
"""pyperf's stability check looks at 2 x 20 samples."""
FLUSH_EVERY_SAMPLES = 1000
FLUSH_EVERY_NS = 250_000_000
CONDITIONS_EVERY_NS = 5_000_000_000
"""Sustained mode reads thermal conditions this often (docs/MEASUREMENT.md, "Drift")."""
DRIFT_MAX_SAMPLES = 20_000
"""Per phase: stats.drift is pure Python; longer phases are thinned evenly in time (kept in order)."""
MIN_ENERGY_INTERVAL_MS = 50
MAX_ENERGY_INTERVAL_MS = 60_000
VIF_REFRESH_GROWTH = 1.1
"""The stopping rule re-estimates serial dependence once the run has grown by 10% (it costs O(n log n))."""


class TimedRun(Protocol):
    """What the harness needs from an engine: ``run(loops) -> elapsed ns``."""

    def run(self, loops: int) -> int: ...


SampleSink = Callable[[str, "array[int]", "array[int]", "str | None"], None]
"""sink(phase, ns, t_ns, thermal_state): one batch of raw samples (elapsed ns of `loops` calls each;
phase warmup|measure|sustained)."""
ProgressSink = Callable[[str, int, int], None]
"""progress(phase, done, total). warmup: samples so far, total = the most it can take
(warmup_max + the stability window); measure: samples so far, total = the sample floor (a run
goes past it until the stopping rule or a ceiling ends it); sustained: seconds of total."""
ConditionsReader = Callable[[], dict[str, Any]]


class SettingsError(ValueError):
    """A measure setting is missing or out of range; the message names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"measure.{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class MeasureSettings:
    """The job's ``measure`` block. Defaults are the method's (docs/MEASUREMENT.md, "Defaults")."""

    runs: int = 5
    warmup_min: int = 5
    warmup_max: int = 300
    min_samples: int = stats.MIN_SAMPLES_P95
    min_duration_s: float = 10.0
    max_duration_s: float = 60.0
    max_samples: int = 100_000
    epsilon: float = 0.02
    check_every: int = 50
    p99: bool = False
    sustained_s: float = 0.0
    cooldown_s: float = 0.0
    wait_nominal_s: float = 120.0
    numeric: bool = True
    energy: str = "off"
    """The power reader (`node_agent.energy.ENERGY_CHOICES`); "off" measures no energy."""
    energy_interval_ms: int = 500
    """The reader's sampling interval; the idle baseline uses the same one."""

    @property
    def sample_floor(self) -> int:
        """The count floor: p95's 130 by default, 662 once p99 is asked (never below min_samples)."""
        return max(self.min_samples, stats.MIN_SAMPLES_P99) if self.p99 else self.min_samples

    @classmethod
    def from_dict(cls, raw: Any) -> MeasureSettings:
        """Validate a job's ``measure`` object; unknown keys are errors (a typo would be silent)."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise SettingsError("", "must be a JSON object")
        defaults = cls()
        known = {f: getattr(defaults, f) for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise SettingsError(unknown[0], f"unknown setting (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for name, default in known.items():
            value = raw.get(name, default)
            if isinstance(default, str):
                if not isinstance(value, str):
                    raise SettingsError(name, f"must be a string, got {value!r}")
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise SettingsError(name, f"must be true or false, got {value!r}")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise SettingsError(name, f"must be an integer, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(name, f"must be a number, got {value!r}")
            values[name] = value
        settings = cls(**values)
        settings._check_ranges()
        return settings

    def _check_ranges(self) -> None:
        positive_ints = ("runs", "min_samples", "max_samples", "check_every")
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise SettingsError(name, "must be >= 1")
        if self.warmup_min < 1:
            raise SettingsError("warmup_min", "must be >= 1")
        if self.warmup_max < self.warmup_min:
            raise SettingsError("warmup_max", f"must be >= warmup_min ({self.warmup_min})")
        for name in ("min_duration_s", "sustained_s", "cooldown_s", "wait_nominal_s"):
            if getattr(self, name) < 0:
                raise SettingsError(name, "must be >= 0")
        if self.max_duration_s <= 0 or self.max_duration_s < self.min_duration_s:
            raise SettingsError(
                "max_duration_s", f"must be > 0 and >= min_duration_s ({self.min_duration_s})"
            )
        if self.max_samples < self.sample_floor:
            raise SettingsError("max_samples", f"must be >= the sample floor ({self.sample_floor})")
        if not 0 < self.epsilon < 1:
            raise SettingsError("epsilon", "must be between 0 and 1 (a relative half-width)")
        from node_agent.energy.auto import ENERGY_CHOICES

        if self.energy not in ENERGY_CHOICES:
            raise SettingsError("energy", f"must be one of {', '.join(ENERGY_CHOICES)}, got {self.energy!r}")
        if not MIN_ENERGY_INTERVAL_MS <= self.energy_interval_ms <= MAX_ENERGY_INTERVAL_MS:
            raise SettingsError(
                "energy_interval_ms",
                f"must be between {MIN_ENERGY_INTERVAL_MS} and {MAX_ENERGY_INTERVAL_MS}, "
                f"got {self.energy_interval_ms}",
            )

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class StopFlag(Protocol):
    def is_set(self) -> bool: ...


class _Samples:
    """A growable array('q') of samples plus their start times; grown between samples only."""

    def __init__(self, capacity: int) -> None:
        self.ns = array("q", bytes(8 * max(capacity, 1)))
        self.t_ns = array("q", bytes(8 * max(capacity, 1)))
        self.n = 0

    def grow(self) -> None:
        extra = bytes(8 * len(self.ns))
        self.ns.frombytes(extra)
        self.t_ns.frombytes(extra)

    def values(self) -> array[int]:
        return self.ns[: self.n]

    def times(self) -> array[int]:
        return self.t_ns[: self.n]


@dataclass
class RunRecord:
    """What one run of one cell measured (the worker reports it; the runner pools runs).

    ``measured_elapsed`` / ``sustained_elapsed`` are the raw samples (ns of ``loops`` calls, as
    sent to the sink); ``measured`` / ``sustained`` / ``warmup`` are per-call times, elapsed /
    loops as floats, which every statistic uses.
    """

    mode: str  # "latency" | "micro"
    loops: int
    warmup: list[float] = field(default_factory=list)
    warmup_converged: bool = True
    measured: array[float] = field(default_factory=lambda: array("d"))
    measured_elapsed: array[int] = field(default_factory=lambda: array("q"))
    measured_t_ns: array[int] = field(default_factory=lambda: array("q"))
    sustained: array[float] = field(default_factory=lambda: array("d"))
    sustained_elapsed: array[int] = field(default_factory=lambda: array("q"))
    sustained_t_ns: array[int] = field(default_factory=lambda: array("q"))
    checks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = ""  # "converged" | "max_samples" | "max_duration" | "stopped"
    """not_converged when max_samples / max_duration (stats.UNCONVERGED_STOPS)."""
    duration_s: float = 0.0
    sustained_duration_s: float = 0.0
    thermal_timeline: list[dict[str, Any]] = field(default_factory=list)
    calibration: list[tuple[int, int]] = field(default_factory=list)
    measure_window_ns: tuple[int, int] | None = None
    """(start, end) of the measure phase on `time.monotonic_ns()`: the clock the agent stamps
    power readings with (system-wide, so the agent and the worker share it)."""
    sustained_window_ns: tuple[int, int] | None = None

    def energy_windows(self) -> dict[str, dict[str, int]]:
        """The phases an energy reader can be asked about: start, end and inferences in each."""
        windows: dict[str, dict[str, int]] = {}
        for name, span, count in (
            ("measure", self.measure_window_ns, len(self.measured)),
            ("sustained", self.sustained_window_ns, len(self.sustained)),
        ):
            if span is not None and count:
                windows[name] = {"start_ns": span[0], "end_ns": span[1], "inferences": count * self.loops}
        return windows


class Harness:
    """Measures one engine in one process. Construct, then call `measure_run`."""

    def __init__(
        self,
        engine: TimedRun,
        settings: MeasureSettings,
        sink: SampleSink,
        *,
        progress: ProgressSink | None = None,
        stop: StopFlag | None = None,
        read_conditions: ConditionsReader | None = None,
        on_thermal: Callable[[int, dict[str, Any]], None] | None = None,
        force_mode: str | None = None,
        force_loops: int | None = None,
        clock_resolution_ns: float | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.sink = sink
        self.progress = progress or (lambda phase, done, total: None)
        self.stop = stop
        self.read_conditions = read_conditions
        self.on_thermal = on_thermal
        self.force_mode = force_mode
        self.force_loops = force_loops
        self.clock_resolution_ns = (
            clock_resolution_ns
            if clock_resolution_ns is not None
            else max(1.0, time.get_clock_info("perf_counter").resolution * 1e9)
        )
        self.epoch_ns = time.perf_counter_ns()

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    # -- mode -----------------------------------------------------------------------------
    def choose_mode(self, record: RunRecord) -> None:
        """Latency mode unless one call is under 200 µs; then calibrate loops (micro-op mode).

        Later runs of a cell pass run 0's choice (force_mode / force_loops), as pyperf's workers
        reuse the calibrated loops, so every run's samples mean the same thing.
        """
        run = self.engine.run
        if self.force_mode is not None:
            mode = self.force_mode
        else:
            probe = sorted(run(1) for _ in range(3))[1]
            mode = "micro" if probe < MICRO_OP_THRESHOLD_NS else "latency"
        record.mode = mode
        if mode == "latency":
            record.loops = 1
            return
        if self.force_loops is not None:
            record.loops = self.force_loops
            return
        loops = 1
        while loops < MAX_LOOPS and not self._stopped():
            elapsed = run(loops)
            record.calibration.append((loops, elapsed))
            if elapsed >= MICRO_OP_TARGET_NS:
                break
            loops *= 2
        record.loops = loops

    # -- warmup ---------------------------------------------------------------------------
    def warmup(self, record: RunRecord) -> None:
        """warmup_min samples, then slide a 2x20 window until stable or warmup_max is reached."""
        settings, run, loops = self.settings, self.engine.run, record.loops
        buf = _Samples(settings.warmup_max + WARMUP_WINDOW)
        perf = time.perf_counter_ns
        epoch = self.epoch_ns
        # The stability window needs 40 samples; warmup_max caps the samples *before* it.
        target = settings.warmup_min + WARMUP_WINDOW
        converged = False
        start = perf()
        # Slow models would spend minutes in 2x20-sample windows: warmup also ends (unconverged)
        # after max_duration_s, once warmup_min samples are taken.
        deadline = start + int(settings.max_duration_s * 1e9)
        last_flush_n, last_flush_t = 0, start
        while not self._stopped():
            t_start = perf()
            elapsed = run(loops)
            i = buf.n
            buf.ns[i] = elapsed
            buf.t_ns[i] = t_start - epoch
            buf.n = i + 1
            # -- between samples from here on --
            if buf.n >= target:
                window = list(buf.ns[buf.n - WARMUP_WINDOW : buf.n])
                if stats.warmup_stable(window):
                    converged = True
                    break
                if buf.n - WARMUP_WINDOW >= settings.warmup_max:
                    break
                target = buf.n + 1  # add one warmup and look again
            now = perf()
            if now >= deadline and buf.n >= settings.warmup_min:
                break
            if now - last_flush_t >= FLUSH_EVERY_NS:
                self._flush("warmup", buf, last_flush_n, None)
                # total = the cap (warmup_max before the stability window), so done never passes it
                self.progress("warmup", buf.n, settings.warmup_max + WARMUP_WINDOW)
                last_flush_n, last_flush_t = buf.n, now
        self._flush("warmup", buf, last_flush_n, None)
        record.warmup = [x / loops for x in buf.values()]
        record.warmup_converged = converged or self._stopped()

    # -- measure --------------------------------------------------------------------------
    def measure(self, record: RunRecord) -> None:
        """Burst measurement: floors, then the adaptive p95 CI rule, within the ceilings."""
        settings, run, loops = self.settings, self.engine.run, record.loops
        floor_n = settings.sample_floor
        min_ns = int(settings.min_duration_s * 1e9)
        max_ns = int(settings.max_duration_s * 1e9)
        max_n = settings.max_samples
        check_every = settings.check_every
        buf = _Samples(max_n)
        perf = time.perf_counter_ns
        epoch = self.epoch_ns
        rule = StopRule(settings.epsilon, self.clock_resolution_ns)
        next_check = floor_n
        window_start = time.monotonic_ns()
        start = perf()
        last_flush_n, last_flush_t = 0, start
        reason = "stopped"
        stop = self.stop
        while stop is None or not stop.is_set():
            t_start = perf()
            elapsed = run(loops)
            i = buf.n
            buf.ns[i] = elapsed
            buf.t_ns[i] = t_start - epoch
            n = buf.n = i + 1
            # -- between samples from here on --
            now = perf()
            if n >= max_n:
                reason = "max_samples"
                break
            if now - start >= max_ns:
                reason = "max_duration"
                break
            if n >= next_check and now - start >= min_ns:
                # Raw elapsed times: the rule is scale-free, so dividing by loops changes nothing.
                if rule.look(buf.ns, n):
                    reason = "converged"
                    break
                next_check = n + check_every
            if n - last_flush_n >= FLUSH_EVERY_SAMPLES or now - last_flush_t >= FLUSH_EVERY_NS:
                self._flush("measure", buf, last_flush_n, None)
                self.progress("measure", n, floor_n)
                last_flush_n, last_flush_t = n, now
        window_end = time.monotonic_ns()
        self._flush("measure", buf, last_flush_n, None)
        self.progress("measure", buf.n, floor_n)
        record.measure_window_ns = (window_start, window_end)
        record.measured_elapsed = buf.values()
        record.measured = per_call(record.measured_elapsed, loops)
        record.measured_t_ns = buf.times()
        record.stop_reason = reason
        record.checks = rule.looks
        record.duration_s = (perf() - start) / 1e9

    # -- sustained ------------------------------------------------------------------------
    def sustained(self, record: RunRecord, duration_s: float) -> None:
        """Keep sampling for duration_s, reading conditions every 5 s (one `thermal` each)."""
        run, loops = self.engine.run, record.loops
        perf = time.perf_counter_ns
        epoch = self.epoch_ns
        buf = _Samples(max(1024, len(record.measured)))
        state = self._sample_conditions(record, perf())
        window_start = time.monotonic_ns()
        start = perf()
        end = start + int(duration_s * 1e9)
        next_conditions = start + CONDITIONS_EVERY_NS
        last_flush_n, last_flush_t = 0, start
        while not self._stopped():
            t_start = perf()
            elapsed = run(loops)
            i = buf.n
            buf.ns[i] = elapsed
            buf.t_ns[i] = t_start - epoch
            buf.n = i + 1
            # -- between samples from here on --
            now = perf()
            if buf.n == len(buf.ns):
                buf.grow()
            if now >= end:
                break
            if now >= next_conditions:
                # Flush first so every batch carries one thermal state.
                self._flush("sustained", buf, last_flush_n, state)
                last_flush_n, last_flush_t = buf.n, now
                state = self._sample_conditions(record, now)
                next_conditions = now + CONDITIONS_EVERY_NS
                self.progress("sustained", int((now - start) / 1e9), int(duration_s))
            elif buf.n - last_flush_n >= FLUSH_EVERY_SAMPLES or now - last_flush_t >= FLUSH_EVERY_NS:
                self._flush("sustained", buf, last_flush_n, state)
                last_flush_n, last_flush_t = buf.n, now
        window_end = time.monotonic_ns()
        self._flush("sustained", buf, last_flush_n, state)
        self._sample_conditions(record, perf())
        record.sustained_window_ns = (window_start, window_end)
        record.sustained_elapsed = buf.values()
        record.sustained = per_call(record.sustained_elapsed, loops)
        record.sustained_t_ns = buf.times()
        record.sustained_duration_s = (perf() - start) / 1e9

    def _sample_conditions(self, record: RunRecord, now_ns: int) -> str | None:
        if self.read_conditions is None:
            return None
        try:
            conditions = self.read_conditions()
        except Exception as exc:  # a reader failing must not end a 15-minute run
            conditions = {"error": f"{type(exc).__name__}: {exc}"}
        t_ns = now_ns - self.epoch_ns
        record.thermal_timeline.append({"t_ns": t_ns, "state": conditions})
        if self.on_thermal is not None:
            self.on_thermal(t_ns, conditions)
        pressure = conditions.get("thermal_pressure")
        return pressure if isinstance(pressure, str) else None

    def _flush(self, phase: str, buf: _Samples, start: int, thermal: str | None) -> None:
        if buf.n > start:
            self.sink(phase, buf.ns[start : buf.n], buf.t_ns[start : buf.n], thermal)

    def measure_run(self, *, sustained_s: float = 0.0) -> RunRecord:
        """Mode, warmup, burst measurement and (when sustained_s > 0) the sustained phase."""
        record = RunRecord(mode="latency", loops=1)
        self.choose_mode(record)
        if not self._stopped():
            self.warmup(record)
        if not self._stopped():
            self.measure(record)
        if sustained_s > 0 and not self._stopped():
            self.sustained(record, sustained_s)
        return record


def per_call(elapsed: array[int], loops: int) -> array[float]:
    """Per-call times, elapsed / loops as floats (integer division biased 20 ns ops by -3%)."""
    if loops == 1:
        return array("d", elapsed)
    return array("d", [x / loops for x in elapsed])


class StopRule:
    """The adaptive stopping rule: stop at the second consecutive look whose p95 CI is within epsilon.

    Each look sorts the samples so far and computes the 99%-rank CI of the p95, widened by the
    clock resolution and, when the lag-1 rank test finds serial dependence, by sqrt(VIF) of the
    p95 indicator. The dependence estimate is refreshed whenever the run has grown by 10%.
    One passing look is not enough (lucky narrow intervals end runs early); and a run this rule
    ends publishes the 99%-rank interval it checked (stats.summarize, ``stop_reasons``), which
    restores the coverage of early stops (docs/MEASUREMENT.md, "Stopping").
    """

    def __init__(self, epsilon: float, resolution_ns: float) -> None:
        self.epsilon = epsilon
        self.resolution_ns = resolution_ns
        self.sorted: list[int] = []
        self.sorted_upto = 0
        self.inflation = 1.0
        self.inflation_n = 0
        self.passes_in_a_row = 0
        self.looks: list[dict[str, Any]] = []

    def look(self, values: array[int], n: int) -> bool:
        self.sorted.extend(values[self.sorted_upto : n])
        self.sorted_upto = n
        self.sorted.sort()  # nearly sorted: timsort merges the new run in ~O(n)
        if n >= VIF_REFRESH_GROWTH * self.inflation_n:
            in_order = values[:n]
            autocorrelated, _ = stats.is_autocorrelated(in_order)
            estimate = stats.nearest_rank(self.sorted, 0.95)
            self.inflation = stats.indicator_vif(in_order, estimate) if autocorrelated else 1.0
            self.inflation_n = n
        width = stats.relative_halfwidth(
            self.sorted, 0.95, 0.99, inflation=self.inflation, resolution=self.resolution_ns
        )
        passed = width is not None and width <= self.epsilon
        self.passes_in_a_row = self.passes_in_a_row + 1 if passed else 0
        self.looks.append({"n": n, "rel_halfwidth": width, "inflation": self.inflation})
        return self.passes_in_a_row >= 2


def thin_evenly(values: Sequence[_T], times: Sequence[int], limit: int) -> tuple[list[_T], list[int]]:
    """At most `limit` samples taken at even index steps (order and time span kept)."""
    n = len(values)
    if n <= limit:
        return list(values), list(times)
    step = n / limit
    idx = [int(i * step) for i in range(limit)]
    return [values[i] for i in idx], [times[i] for i in idx]


def drift_of(record: RunRecord) -> dict[str, Any] | None:
    """stats.drift of a sustained run: the measured (burst) phase vs the sustained phase's final window.

    Each phase is thinned to at most DRIFT_MAX_SAMPLES evenly spaced samples first.
    """
    if not len(record.sustained):
        return None
    burst, _ = thin_evenly(list(record.measured), list(record.measured_t_ns), DRIFT_MAX_SAMPLES)
    sustained, times = thin_evenly(list(record.sustained), list(record.sustained_t_ns), DRIFT_MAX_SAMPLES)
    result = stats.drift(burst, sustained, sustained_t_ns=times)
    result["n_used"] = len(burst) + len(sustained)
    return result


def thermal_state_changed(states: list[str | None]) -> bool:
    """True when more than one known thermal pressure was seen across a cell."""
    return len({s for s in states if s is not None}) > 1


def clock_info() -> dict[str, Any]:
    """time.get_clock_info("perf_counter"), recorded at start-up (docs/MEASUREMENT.md, "Clock")."""
    info = time.get_clock_info("perf_counter")
    return {
        "name": "perf_counter_ns",
        "implementation": info.implementation,
        "resolution_s": info.resolution,
        "resolution_ns": max(1, round(info.resolution * 1e9)),
        "monotonic": info.monotonic,
        "adjustable": info.adjustable,
    }
