"""Energy arithmetic on synthetic traces whose answers are known exactly.

Power readings are averages over the interval that ends at their stamp; counter deltas are
joules over their span. Times are integer ns and the watts are binary-exact, so most answers
are exact; the seeded simulation checks the error bound of clipping with jittered stamps.
"""

from __future__ import annotations

import json
import random

import pytest

from node_agent.energy import (
    EnergyDelta,
    PowerSample,
    ReaderInfo,
    counter_window_energy,
    idle_baseline,
    min_window_ns,
    power_window_energy,
    run_energy,
    window_energy,
)
from node_agent.energy.base import EnergyReader, Sample
from node_agent.energy.trace import EnergyTrace

S = 1_000_000_000
MS = 1_000_000


def power_trace(start_s: float, end_s: float, step_s: float, watts_at: object) -> list[PowerSample]:
    """Readings every `step_s` whose stamp t carries watts_at(t) (the average over (t-step, t])."""
    assert callable(watts_at)
    samples = []
    t = round(start_s * S)
    while t <= round(end_s * S):
        samples.append(PowerSample(t, dict(watts_at(t / S)), interval_ns=round(step_s * S)))
        t += round(step_s * S)
    return samples


def info(
    interval_ms: int = 100, cadence_ms: int = 1000, name: str = "macmon", kind: str = "power"
) -> ReaderInfo:
    return ReaderInfo(
        name=name, version="0.6.1", interval_ms=interval_ms, publish_cadence_ms=cadence_ms, kind=kind
    )


def test_constant_power() -> None:
    samples = power_trace(0.1, 20.0, 0.1, lambda t: {"cpu": 2.0, "gpu": 0.5})
    window = power_window_energy(samples, 5 * S, 15 * S, first_interval_ns=100 * MS)
    assert window.joules == {"cpu": 20.0, "gpu": 5.0}
    assert window.with_soc()["soc"] == 25.0 and window.missing == ()


def test_a_step_in_power() -> None:
    samples = power_trace(0.5, 20.0, 0.5, lambda t: {"cpu": 1.0 if t <= 10 else 3.0})
    window = power_window_energy(samples, 5 * S, 15 * S, first_interval_ns=500 * MS)
    assert window.joules == {"cpu": 5 * 1.0 + 5 * 3.0}


def test_a_window_clipped_mid_interval() -> None:
    """Reading i at t = i s is i W over (i-1, i]; the window [2.25 s, 7.5 s] cuts two of them."""
    samples = [PowerSample(i * S, {"cpu": float(i)}) for i in range(1, 11)]
    window = power_window_energy(samples, 2250 * MS, 7500 * MS, first_interval_ns=S)
    assert window.joules == {"cpu": 0.75 * 3 + 4 + 5 + 6 + 7 + 0.5 * 8}
    assert window.readings == 6


def test_the_first_reading_covers_its_own_interval_before_its_stamp() -> None:
    samples = [PowerSample(1 * S, {"cpu": 4.0}, interval_ns=S // 2), PowerSample(2 * S, {"cpu": 2.0})]
    window = power_window_energy(samples, S // 2, 2 * S, first_interval_ns=S)
    assert window.joules == {"cpu": 0.5 * 4.0 + 1.0 * 2.0}
    late = power_window_energy(samples, 0, 2 * S, first_interval_ns=S)
    assert late.joules == {} and late.missing == ("cpu",)  # (0, 0.5 s] was not measured


def test_lumpy_counter_updates_every_two_seconds() -> None:
    """4 W of CPU published as an 8 J lump every 2 s; the GPU's nJ channel every 100 ms at 1 W."""
    deltas = [EnergyDelta(t * S, (t - 2) * S, "cpu", 8.0, "CPU Energy") for t in range(2, 31, 2)]
    deltas += [EnergyDelta(k * 100 * MS, (k - 1) * 100 * MS, "gpu", 0.1, "GPU Energy") for k in range(1, 301)]
    window = counter_window_energy(deltas, 3 * S, 13 * S)
    assert window.joules["cpu"] == 40.0  # half of the 4 s lump + four lumps + half of the 14 s lump
    assert window.joules["gpu"] == pytest.approx(10.0, rel=1e-12)
    assert window.missing == ()


def test_a_counter_window_needs_the_publication_after_its_end() -> None:
    deltas = [EnergyDelta(t * S, (t - 2) * S, "cpu", 8.0, "CPU Energy") for t in range(2, 13, 2)]
    window = counter_window_energy(deltas, 3 * S, 13 * S)  # the lump covering (12, 14] has not come
    assert window.joules == {} and window.missing == ("cpu",)


def test_an_idle_counter_rail_reporting_zero_deltas_still_covers() -> None:
    deltas = [EnergyDelta(t * S, (t - 3) * S, "ane", 0.0, "ANE0") for t in range(3, 22, 3)]
    deltas += [EnergyDelta(t * S, (t - 1) * S, "cpu", 2.0, "CPU Energy") for t in range(1, 22)]
    window = counter_window_energy(deltas, 4 * S, 16 * S)
    assert window.joules == {"ane": 0.0, "cpu": 24.0}
    assert window.with_soc()["soc"] == 24.0 and window.soc_rails == ("cpu", "ane")


def test_idle_subtraction_gives_joules_per_inference() -> None:
    def watts(t: float) -> dict[str, float]:
        if t <= 10:
            return {"cpu": 1.0, "gpu": 0.5, "system": 10.0}
        return {"cpu": 3.0, "gpu": 1.0, "system": 14.0}

    samples = power_trace(0.25, 40.0, 0.25, watts)
    reader = info(interval_ms=250)
    idle = idle_baseline(samples, 0, 10 * S, reader)
    assert idle.status == "ok"
    assert idle.watts == {"cpu": 1.0, "gpu": 0.5, "system": 10.0, "soc": 1.5}
    run = run_energy(samples, 10 * S, 30 * S, 400, reader, idle)
    assert run.status == "ok" and run.published and run.flags == ()
    assert run.joules == {"cpu": 60.0, "gpu": 20.0, "system": 280.0, "soc": 80.0}
    assert run.avg_watts == {"cpu": 3.0, "gpu": 1.0, "system": 14.0, "soc": 4.0}
    assert run.joules_per_inference == {
        "cpu": (60 - 20) / 400,
        "gpu": (20 - 10) / 400,
        "system": (280 - 200) / 400,
        "soc": (80 - 30) / 400,
    }
    assert run.soc_rails == ("cpu", "gpu")
    json.dumps(run.to_dict())  # what the agent sends is plain JSON


def test_idle_subtraction_on_counters() -> None:
    deltas = [
        EnergyDelta(t * S, (t - 2) * S, "cpu", 2.0 if t <= 10 else 10.0, "CPU Energy")
        for t in range(2, 41, 2)
    ]
    reader = info(interval_ms=100, name="ioreport", kind="counter")
    idle = idle_baseline(deltas, 0, 10 * S, reader)
    run = run_energy(deltas, 10 * S, 30 * S, 50, reader, idle)
    assert idle.watts == {"cpu": 1.0, "soc": 1.0}
    assert run.joules == {"cpu": 100.0, "soc": 100.0}
    assert run.joules_per_inference == {"cpu": (100 - 20) / 50, "soc": (100 - 20) / 50}


def test_a_window_too_short_to_publish() -> None:
    samples = power_trace(0.5, 20.0, 0.5, lambda t: {"cpu": 2.0})
    reader = info(interval_ms=500, cadence_ms=2000)
    assert min_window_ns(500, 2000) == 20 * S  # ten publish cadences beat five intervals
    assert min_window_ns(500, 2000, "counter") == 6 * S  # apportioned spans: three cadences
    assert min_window_ns(2000, 0) == 20 * S and min_window_ns(2000, 0, "counter") == 10 * S
    short = run_energy(samples, 0, 19 * S, 100, reader, None)
    assert short.status == "energy_too_short" and not short.published
    assert short.joules == {} and short.avg_watts == {} and short.joules_per_inference == {}
    ok = run_energy(samples, 0, 20 * S, 100, reader, None)
    assert ok.status == "ok" and ok.joules == {"cpu": 40.0, "soc": 40.0}
    assert ok.flags == ("energy_no_idle",) and ok.joules_per_inference == {}
    assert ok.edge_uncertainty == 0.2  # a 2 s publication misplaced at each edge of 20 s
    assert idle_baseline(samples, 0, 19 * S, reader).status == "energy_too_short"
    counter = info(interval_ms=500, cadence_ms=2000, name="ioreport", kind="counter")
    deltas = [EnergyDelta(t * S, (t - 2) * S, "cpu", 4.0, "CPU Energy") for t in range(2, 21, 2)]
    assert run_energy(deltas, 2 * S, 7 * S, 1, counter, None).status == "energy_too_short"
    apportioned = run_energy(deltas, 2 * S, 8 * S, 1, counter, None)
    assert apportioned.status == "ok" and apportioned.edge_uncertainty == 0.0


def test_a_reader_that_stopped_early_leaves_the_window_incomplete() -> None:
    samples = power_trace(0.1, 12.0, 0.1, lambda t: {"cpu": 2.0})
    run = run_energy(samples, 2 * S, 15 * S, 10, info(), None)
    assert run.status == "energy_incomplete" and run.joules == {}
    assert run_energy([], 2 * S, 15 * S, 10, info(), None).status == "energy_no_samples"


def test_a_baseline_from_another_reader_or_interval_is_not_subtracted() -> None:
    samples = power_trace(0.1, 30.0, 0.1, lambda t: {"cpu": 2.0})
    idle = idle_baseline(samples, 0, 10 * S, info(interval_ms=100))
    run = run_energy(samples, 10 * S, 30 * S, 10, info(interval_ms=200), idle)
    assert run.flags == ("idle_other_reader",) and run.joules_per_inference == {} and run.idle_watts == {}


def test_work_below_the_idle_baseline_is_flagged() -> None:
    samples = power_trace(0.1, 30.0, 0.1, lambda t: {"cpu": 2.0 if t <= 10 else 1.0})
    reader = info()
    run = run_energy(samples, 10 * S, 30 * S, 10, reader, idle_baseline(samples, 0, 10 * S, reader))
    assert "below_idle" in run.flags and run.joules_per_inference["cpu"] == (20.0 - 40.0) / 10


def test_a_rail_missing_in_part_of_the_window_is_left_out_of_the_soc_and_flagged() -> None:
    samples = power_trace(0.1, 30.0, 0.1, lambda t: {"cpu": 2.0, "gpu": 1.0} if t < 20 else {"cpu": 2.0})
    run = run_energy(samples, 10 * S, 30 * S, 10, info(), None)
    assert run.soc_rails == ("cpu",) and run.joules["soc"] == 40.0
    assert "rails_missing:gpu" in run.flags


def test_mixed_readers_and_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="mixes"):
        window_energy(
            [PowerSample(S, {"cpu": 1.0}), EnergyDelta(S, 0, "cpu", 1.0)], 0, S, first_interval_ns=S
        )
    with pytest.raises(ValueError, match="empty window"):
        power_window_energy([], S, S, first_interval_ns=S)
    with pytest.raises(ValueError, match="inferences"):
        run_energy([], 0, S, 0, info(), None)


def test_seeded_simulation_clipping_error_is_bounded_by_one_interval_at_each_edge() -> None:
    """Jittered stamps (the agent stamps on arrival), power a random step function, each
    reading the exact average of the true power over its interval. The window's error can only
    come from the two straddling intervals, where power is assumed even: |error| <= 2 * max
    interval * max |step|. Each case is also checked against the exact integral."""
    rng = random.Random(20261202)
    for _case in range(200):
        steps = sorted(rng.uniform(0, 30) for _ in range(rng.randint(0, 6)))
        levels = [rng.uniform(0.5, 20.0) for _ in range(len(steps) + 1)]

        def true_energy(
            a: float, b: float, steps: list[float] = steps, levels: list[float] = levels
        ) -> float:
            edges = [0.0, *steps, 1e9]
            return sum(
                levels[i] * max(0.0, min(b, edges[i + 1]) - max(a, edges[i])) for i in range(len(levels))
            )

        stamps, t = [], 0.0
        while t < 31:
            t += rng.uniform(0.08, 0.14)
            stamps.append(t)
        samples, previous = [], 0.0
        for stamp in stamps:
            avg = true_energy(previous, stamp) / (stamp - previous)
            samples.append(PowerSample(round(stamp * S), {"cpu": avg}, interval_ns=round(stamp * S)))
            previous = stamp
        a, b = rng.uniform(1, 10), rng.uniform(15, 30)
        got = power_window_energy(samples, round(a * S), round(b * S), first_interval_ns=S).joules["cpu"]
        bound = 2 * 0.14 * (max(levels) - min(levels)) + 1e-6
        assert abs(got - true_energy(a, b)) <= bound
        if not steps:
            assert got == pytest.approx(levels[0] * (round(b * S) - round(a * S)) / S, rel=1e-9)


class FakeReader(EnergyReader):
    """A reader handing out a prepared list of samples in batches (no process, no thread)."""

    name = "fake"

    def __init__(self, batches: list[list[Sample]], kind: str = "power") -> None:
        super().__init__(100)
        self.batches = batches
        self.kind = kind
        self.publish_cadence_ms = 2000 if kind == "counter" else 0

    def unavailable_reason(self) -> str | None:
        return None

    def read_version(self) -> str | None:
        return "1.0"

    def _start(self) -> None:
        pass

    def _stop(self) -> None:
        pass

    def poll(self, timeout_s: float = 0.0) -> list[Sample]:
        return self.batches.pop(0) if self.batches else []


def test_trace_waits_for_coverage_and_forgets_only_what_no_later_window_needs() -> None:
    samples = power_trace(0.1, 30.0, 0.1, lambda t: {"cpu": 1.0 if t <= 15 else 2.0})
    reader = FakeReader([list(samples[:100]), list(samples[100:200]), list(samples[200:])])
    with reader:
        trace = EnergyTrace(reader)
        assert trace.wait_covered(25 * S, timeout_s=5.0)
        before = trace.run(16 * S, 26 * S, 10, None)
        trace.discard_before(16 * S)
        assert len(trace.samples) < len(samples) - 100
        after = trace.run(16 * S, 26 * S, 10, None)
    assert after.joules == before.joules == {"cpu": 20.0, "soc": 20.0}
    assert trace.covered_until_ns() == 30 * S
    assert trace.coverage_timeout_s() == 1.2  # two 100 ms intervals and a second of slack
    assert not EnergyTrace(FakeReader([])).wait_covered(S, timeout_s=0.3)


def test_a_counter_trace_is_covered_only_as_far_as_its_slowest_channel() -> None:
    lumps: list[Sample] = [EnergyDelta(t * S, (t - 2) * S, "cpu", 8.0, "CPU Energy") for t in (2, 4, 6)]
    fine: list[Sample] = [
        EnergyDelta(k * S // 10, (k - 1) * S // 10, "gpu", 0.1, "GPU Energy") for k in range(1, 71)
    ]
    trace = EnergyTrace(FakeReader([lumps + fine], kind="counter"))
    trace.collect()
    assert trace.covered_until_ns() == 6 * S  # the GPU reached 7 s, the CPU's last lump 6 s
    assert trace.coverage_timeout_s() == 4.0  # a silent channel reports within 3 s
    run = trace.run(1 * S, 5 * S, 4, None)
    assert run.status == "energy_too_short"  # 4 s < three 2 s publish cadences
    trace.discard_before(3 * S)
    assert all(s.t_ns > 3 * S for s in trace.samples)
