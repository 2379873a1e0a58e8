"""The measurement harness (node_agent.measure) on real timed functions.

The engines here are real code timed for real: they spin on perf_counter_ns for a set time,
so the harness sees latencies it can reason about without a model.
"""

from __future__ import annotations

import math
import random
import threading
import time
from array import array
from typing import Any

import pytest

from node_agent import measure, stats
from node_agent.measure import Harness, MeasureSettings, SettingsError


def spin(ns: int) -> None:
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


class SpinEngine:
    """run(loops) spins `per_call_ns(i)` per call, i = the call index; records if a sink ran inside."""

    def __init__(self, per_call_ns: Any) -> None:
        self.per_call_ns = per_call_ns if callable(per_call_ns) else (lambda i: per_call_ns)
        self.calls = 0
        self.in_run = False

    def run(self, loops: int) -> int:
        self.in_run = True
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            spin(self.per_call_ns(self.calls))
            self.calls += 1
        elapsed = time.perf_counter_ns() - t0
        self.in_run = False
        return elapsed


class Recorder:
    def __init__(self, engine: SpinEngine | None = None) -> None:
        self.batches: list[tuple[str, list[int], list[int], str | None]] = []
        self.engine = engine
        self.flushed_inside_timed_region = False

    def __call__(self, phase: str, ns: array[int], t_ns: array[int], thermal: str | None) -> None:
        if self.engine is not None and self.engine.in_run:
            self.flushed_inside_timed_region = True
        self.batches.append((phase, list(ns), list(t_ns), thermal))

    def values(self, phase: str) -> list[int]:
        return [x for p, ns, _, _ in self.batches if p == phase for x in ns]


def small(**overrides: Any) -> MeasureSettings:
    base: dict[str, Any] = {
        "runs": 1,
        "warmup_min": 5,
        "warmup_max": 60,
        "min_samples": 30,
        "min_duration_s": 0.05,
        "max_duration_s": 3.0,
        "max_samples": 5000,
        "epsilon": 0.05,
        "check_every": 20,
    }
    base.update(overrides)
    return MeasureSettings.from_dict(base)


def test_settings_defaults_are_the_method_defaults() -> None:
    s = MeasureSettings.from_dict({})
    assert (s.runs, s.warmup_min, s.warmup_max, s.min_samples) == (5, 5, 300, 130)
    assert (s.min_duration_s, s.epsilon, s.check_every) == (10.0, 0.02, 50)
    assert s.sample_floor == 130
    assert MeasureSettings.from_dict({"p99": True}).sample_floor == stats.MIN_SAMPLES_P99


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"runz": 3}, "runz"),
        ({"runs": 0}, "runs"),
        ({"runs": "5"}, "runs"),
        ({"p99": 1}, "p99"),
        ({"epsilon": 0}, "epsilon"),
        ({"min_duration_s": 5, "max_duration_s": 2}, "max_duration_s"),
        ({"warmup_min": 10, "warmup_max": 5}, "warmup_max"),
        ({"max_samples": 100}, "max_samples"),
    ],
)
def test_settings_errors_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(SettingsError) as info:
        MeasureSettings.from_dict(raw)
    assert info.value.field == field
    assert f"measure.{field}" in str(info.value)


def test_latency_mode_meets_floors_and_flushes_outside_the_timed_region() -> None:
    engine = SpinEngine(300_000)
    sink = Recorder(engine)
    settings = small()
    record = Harness(engine, settings, sink).measure_run()
    assert record.mode == "latency" and record.loops == 1
    assert len(record.measured) >= settings.min_samples
    assert record.duration_s >= settings.min_duration_s
    assert record.stop_reason in ("converged", "max_duration", "max_samples")  # a busy box may not converge
    assert not sink.flushed_inside_timed_region
    # every measured sample reached the sink exactly once, in order (raw ns; loops == 1 here)
    assert sink.values("measure") == list(record.measured_elapsed) == list(record.measured)
    assert sink.values("warmup") == record.warmup
    # one inference per sample: each sample is at least the spin time
    assert min(record.measured) >= 300_000
    # timestamps increase and every batch is small enough for one line
    times = list(record.measured_t_ns)
    assert times == sorted(times)
    assert all(len(ns) <= measure.FLUSH_EVERY_SAMPLES for _, ns, _, _ in sink.batches)


def test_micro_op_mode_calibrates_loops_to_10ms() -> None:
    engine = SpinEngine(20_000)
    record = Harness(engine, small(min_samples=20), Recorder()).measure_run()
    assert record.mode == "micro"
    # loops doubled until one sample took >= 10 ms (a preempted sample may end it early)
    last_loops, last_elapsed = record.calibration[-1]
    assert last_loops == record.loops and last_elapsed >= measure.MICRO_OP_TARGET_NS
    assert all(elapsed < measure.MICRO_OP_TARGET_NS for _, elapsed in record.calibration[:-1])
    # per-call times (floats) are the raw elapsed times over loops; each call spins >= 20 µs (no
    # upper bound: a preempted call on a busy box is slower, never faster)
    assert statistics_median(list(record.measured)) >= 20_000
    assert list(record.measured) == [x / record.loops for x in record.measured_elapsed]


def statistics_median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def test_warmup_waits_for_a_stable_window() -> None:
    # the first 60 calls ramp down from 2.25 ms to 250 µs (caches warming), then stay steady
    engine = SpinEngine(lambda i: 250_000 + max(0, 60 - i) * 33_000)
    record = Harness(engine, small(warmup_max=200), Recorder()).measure_run()
    # A 2x20 window over the ramp has halves whose medians differ by far more than 5%, so
    # warmup cannot end before most of the ramp is behind it.
    calls_before_measuring = engine.calls - len(record.measured)
    assert calls_before_measuring >= 45
    assert len(record.warmup) >= 45 - 3  # 3 mode probes ran first
    assert len(record.warmup) <= 200 + measure.WARMUP_WINDOW


def test_warmup_is_capped_and_flagged_unconverged() -> None:
    # every call 3% slower than the last: never stable
    engine = SpinEngine(lambda i: int(200_000 * 1.03 ** min(i, 150)))
    record = Harness(
        engine, small(warmup_max=20, max_duration_s=0.2, min_duration_s=0.0), Recorder()
    ).measure_run()
    assert not record.warmup_converged
    assert len(record.warmup) == 20 + measure.WARMUP_WINDOW


def test_ceilings_stop_a_run_that_cannot_converge() -> None:
    engine = SpinEngine(lambda i: 200_000 + (i % 7) * 60_000)
    record = Harness(
        engine, small(epsilon=1e-9, max_samples=200, min_duration_s=0.0), Recorder()
    ).measure_run()
    assert record.stop_reason == "max_samples" and len(record.measured) == 200
    record = Harness(
        engine, small(epsilon=1e-9, max_duration_s=0.3, min_duration_s=0.0), Recorder()
    ).measure_run()
    # the ceiling is a floor on the run's length; how far past it a busy box goes is not asserted
    assert record.stop_reason == "max_duration" and record.duration_s >= 0.3


def test_p99_raises_the_sample_floor() -> None:
    engine = SpinEngine(210_000)
    record = Harness(
        engine, small(p99=True, min_duration_s=0.0, max_duration_s=30.0), Recorder()
    ).measure_run()
    assert len(record.measured) >= stats.MIN_SAMPLES_P99


def test_stop_flag_ends_the_run() -> None:
    # The flag is raised by the engine at its 200th call (not by a timer), so the run cannot reach
    # a ceiling first however slow the box is: 1e-9 epsilon never converges, 30 s, 5000 samples.
    stop = threading.Event()

    def per_call(i: int) -> int:
        if i == 200:
            stop.set()
        return 300_000

    engine = SpinEngine(per_call)
    settings = small(epsilon=1e-9, max_duration_s=30.0)
    record = Harness(engine, settings, Recorder(), stop=stop).measure_run()
    assert record.stop_reason == "stopped"
    assert len(record.measured) < settings.max_samples and engine.calls < 200 + settings.max_samples


def test_sustained_mode_reads_conditions_and_tags_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "CONDITIONS_EVERY_NS", 150_000_000)
    states = iter(["nominal", "fair", "serious", "serious", "serious", "serious", "serious", "serious"] * 10)
    thermal_events: list[tuple[int, dict[str, Any]]] = []
    sink = Recorder()

    def read_conditions() -> dict[str, Any]:
        return {"thermal_pressure": next(states)}

    harness = Harness(
        SpinEngine(300_000),
        small(),
        sink,
        read_conditions=read_conditions,
        on_thermal=lambda t, s: thermal_events.append((t, s)),
    )
    record = harness.measure_run(sustained_s=0.6)
    assert record.sustained_duration_s >= 0.6  # no upper bound: a busy box overruns a little
    assert len(thermal_events) >= 4  # start, every 150 ms, end
    tags = [t for p, _, _, t in sink.batches if p == "sustained"]
    assert tags[0] == "nominal" and "fair" in tags
    assert sink.values("sustained") == list(record.sustained_elapsed)
    drift = measure.drift_of(record)
    assert drift is not None
    # burst = the whole measured phase; sustained = the final 20% (by time) of the sustained phase
    assert drift["burst"]["n"] == len(record.measured) and 0 < drift["sustained"]["n"] < len(record.sustained)
    assert drift["n_used"] == len(record.measured) + len(record.sustained)
    assert measure.thermal_state_changed([e[1]["thermal_pressure"] for e in thermal_events])


def test_thin_evenly_keeps_order_and_span() -> None:
    values = list(range(1000))
    times = [10 * v for v in values]
    v, t = measure.thin_evenly(values, times, 100)
    assert len(v) == 100 and v == sorted(v) and v[0] == 0 and v[-1] >= 990
    assert t == [10 * x for x in v]
    assert measure.thin_evenly(values[:50], times[:50], 100) == (values[:50], times[:50])


def test_thermal_state_changed_ignores_unknown() -> None:
    assert not measure.thermal_state_changed([None, "nominal", None, "nominal"])
    assert measure.thermal_state_changed(["nominal", "fair"])


def test_clock_info_is_recorded() -> None:
    info = measure.clock_info()
    assert info["name"] == "perf_counter_ns"
    assert info["monotonic"] is True
    assert info["resolution_ns"] >= 1


def test_warmup_of_a_slow_model_is_capped_in_time() -> None:
    # 10 ms calls that keep slowing down would need 300 + 40 samples; max_duration_s caps warmup
    engine = SpinEngine(lambda i: 10_000_000 + 300_000 * i)
    settings = small(warmup_max=300, max_duration_s=0.3, min_duration_s=0.0, min_samples=5)
    record = Harness(engine, settings, Recorder()).measure_run()
    assert not record.warmup_converged
    assert settings.warmup_min <= len(record.warmup) < 60


class FakeBatchClock:
    """A simulated clock, not a timed engine: run(loops) returns the elapsed ns of `loops` calls of
    ~per_call_ns each (lognormal spread), instantly. Micro-op arithmetic is checked without
    depending on this box's timer."""

    def __init__(self, per_call_ns: float, sigma: float, seed: int) -> None:
        self.per_call_ns, self.sigma = per_call_ns, sigma
        self.rng = random.Random(seed)

    def run(self, loops: int) -> int:
        return round(loops * self.per_call_ns * math.exp(self.sigma * self.rng.gauss(0, 1)))


def test_micro_op_samples_keep_raw_elapsed_and_divide_as_floats() -> None:
    # Finding 4: elapsed // loops biased a 20 ns op's p95 by -3%.
    sink = Recorder()
    settings = small(min_duration_s=0.0, epsilon=0.02, min_samples=130, check_every=50)
    record = Harness(FakeBatchClock(20.0, 0.05, 1), settings, sink, clock_resolution_ns=1.0).measure_run()
    assert record.mode == "micro" and record.loops >= 1 << 18
    assert sink.values("measure") == list(record.measured_elapsed)  # raw ints on the wire
    assert min(record.measured_elapsed) >= measure.MICRO_OP_TARGET_NS * 0.8
    fractions = {x % 1 for x in record.measured}
    assert len(fractions) > 10  # per-call times keep their fraction
    summary = stats.summarize(record.measured_elapsed, loops=record.loops)
    truth = 20.0 * math.exp(0.05 * 1.6448536269514722)
    assert summary["p95"] == pytest.approx(truth, rel=0.01)
    truncated = stats.nearest_rank(sorted(x // record.loops for x in record.measured_elapsed), 0.95)
    assert truncated < truth * 0.985  # what integer division published


def test_stop_rule_needs_two_consecutive_passing_looks() -> None:
    # Finding 10: the rule stopped at its first passing look.
    rule = measure.StopRule(epsilon=0.05, resolution_ns=1.0)
    rng = random.Random(3)
    values = array("q", [round(1e6 * rng.lognormvariate(0, 0.02)) for _ in range(400)])
    assert rule.look(values, 200) is False  # passes once
    assert rule.looks[-1]["rel_halfwidth"] is not None and rule.looks[-1]["rel_halfwidth"] <= 0.05
    assert rule.look(values, 250) is True  # and again: stop
    strict = measure.StopRule(epsilon=1e-6, resolution_ns=1.0)
    assert not strict.look(values, 200) and not strict.look(values, 250)


def test_stop_rule_widens_for_an_autocorrelated_run() -> None:
    rng = random.Random(4)
    y, series = 0.0, []
    for _ in range(3000):
        y = 0.8 * y + 0.6 * rng.gauss(0, 1)
        series.append(round(1e6 * math.exp(0.05 * y)))
    values = array("q", series)
    rule = measure.StopRule(epsilon=0.02, resolution_ns=1.0)
    rule.look(values, 3000)
    assert rule.inflation > 2.0
    independent = measure.StopRule(epsilon=0.02, resolution_ns=1.0)
    shuffled = series[:]
    rng.shuffle(shuffled)
    independent.look(array("q", shuffled), 3000)
    assert independent.inflation == 1.0
    assert rule.looks[-1]["rel_halfwidth"] > independent.looks[-1]["rel_halfwidth"]


def test_a_heavy_tail_that_never_converges_is_flagged() -> None:
    # Finding 9: a Pareto p95 never reached epsilon and only stop_reason said so.
    rng = random.Random(5)

    class FakeParetoClock:
        def run(self, loops: int) -> int:
            return round(loops * 1e6 * rng.paretovariate(1.5))

    record = Harness(
        FakeParetoClock(),
        small(epsilon=0.005, max_samples=400, min_duration_s=0.0),
        Recorder(),
        force_mode="latency",
    ).measure_run()
    assert record.stop_reason == "max_samples"
    summary = stats.summarize(record.measured_elapsed, stop_reasons=[record.stop_reason])
    assert "not_converged" in summary["flags"]


def test_progress_counts_match_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue: "warmup 56/42" with warmup_max = 20. Warmup's total is the most it can take
    # (warmup_max + the stability window), so its count never passes it; measure's total is the
    # sample floor. Ticks every 1 ms here so a short, never-stable warmup reports several.
    monkeypatch.setattr(measure, "FLUSH_EVERY_NS", 1_000_000)
    ticks: list[tuple[str, int, int]] = []
    engine = SpinEngine(lambda i: int(200_000 * 1.03 ** min(i, 150)))  # never stable
    settings = small(warmup_max=20, max_duration_s=0.2, min_duration_s=0.0)
    Harness(engine, settings, Recorder(), progress=lambda p, d, t: ticks.append((p, d, t))).measure_run()
    warmup = [(d, t) for p, d, t in ticks if p == "warmup"]
    assert warmup and all(t == 20 + measure.WARMUP_WINDOW and d <= t for d, t in warmup)
    samples = [(d, t) for p, d, t in ticks if p == "measure"]
    assert samples and all(t == settings.sample_floor for _, t in samples)
