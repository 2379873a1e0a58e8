"""Seeded simulations of the published statistics: coverage, flag rates, the drift gate, micro-op bias.

Each check drives the real code (stats.summarize, measure.Harness and drift_of, the gates) on
data whose truth is known, and asserts the acceptance figures of docs/MEASUREMENT.md with a
tolerance for simulation error: a rate must not be significantly worse than its target
(one-sided, z = 2.33 for the number of replications used). The replication counts here keep
the module fast; tests/bench/bench_coverage.py runs the same scenarios with more and prints the
table of docs/MEASUREMENT.md.
"""

from __future__ import annotations

import math
import random
import statistics
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleet_tui.analysis.gates import thermal_drift
from fleet_tui.model.gates import CellOutcome
from node_agent import measure, stats
from node_agent.measure import Harness, MeasureSettings

Z_TOLERANCE = 2.33
_NORMAL = statistics.NormalDist()
MU = math.log(2e6)  # 2 ms calls


# --- distributions with known quantiles ---------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    name: str
    draw: Callable[[random.Random], float]
    quantile: Callable[[float], float]


def _lognormal(sigma: float) -> Dist:
    return Dist(
        f"lognormal s={sigma:g}",
        lambda rng: math.exp(MU + sigma * rng.gauss(0, 1)),
        lambda q: math.exp(MU + sigma * _NORMAL.inv_cdf(q)),
    )


def _bimodal_cdf(x: float) -> float:
    low = _NORMAL.cdf((math.log(x) - MU) / 0.05)
    high = _NORMAL.cdf((math.log(x) - MU - math.log(1.6)) / 0.05)
    return 0.9 * low + 0.1 * high


def _bimodal_quantile(q: float) -> float:
    lo, hi = math.exp(MU - 1), math.exp(MU + 2)
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if _bimodal_cdf(mid) < q:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def _bimodal_draw(rng: random.Random) -> float:
    shift = math.log(1.6) if rng.random() < 0.1 else 0.0
    return math.exp(MU + shift + 0.05 * rng.gauss(0, 1))


PARETO_ALPHA = 2.5
DISTS = (
    _lognormal(0.1),
    _lognormal(0.5),
    Dist("bimodal 90/10", _bimodal_draw, _bimodal_quantile),
    Dist(
        f"pareto a={PARETO_ALPHA:g}",
        lambda rng: 2e6 * rng.paretovariate(PARETO_ALPHA),
        lambda q: 2e6 * (1 - q) ** (-1 / PARETO_ALPHA),
    ),
)


def ar1_series(rng: random.Random, n: int, rho: float, sigma: float = 0.1) -> list[float]:
    """exp(MU + sigma * y) with y a stationary unit-variance AR(1) process."""
    y = rng.gauss(0, 1)
    out = []
    innovation = math.sqrt(1 - rho * rho)
    for _ in range(n):
        y = rho * y + innovation * rng.gauss(0, 1)
        out.append(math.exp(MU + sigma * y))
    return out


# --- tallies ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    hits: int = 0
    total: int = 0

    def add(self, hit: bool) -> None:
        self.hits += hit
        self.total += 1

    @property
    def rate(self) -> float:
        return self.hits / self.total if self.total else math.nan


def tolerance(target: float, total: int) -> float:
    return Z_TOLERANCE * math.sqrt(target * (1 - target) / total)


def assert_at_least(tally: Tally, target: float, what: str) -> None:
    assert tally.total > 0, what
    floor = target - tolerance(target, tally.total)
    assert tally.rate >= floor, f"{what}: {tally.rate:.3f} over {tally.total} < {floor:.3f} (target {target})"


def assert_at_most(tally: Tally, target: float, what: str) -> None:
    assert tally.total > 0, what
    ceiling = target + tolerance(target, tally.total)
    assert tally.rate <= ceiling, (
        f"{what}: {tally.rate:.3f} over {tally.total} > {ceiling:.3f} (target {target})"
    )


# --- scenarios (shared with tests/bench/bench_coverage.py) ------------------------------------------

QUANTILES = (("p50", 0.5), ("p95", 0.95))


@dataclass
class RunStats:
    coverage: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k, _ in QUANTILES})
    no_interval: Tally = field(default_factory=Tally)
    flags: dict[str, Tally] = field(default_factory=dict)

    def flag(self, name: str, summary: dict[str, Any]) -> None:
        self.flags.setdefault(name, Tally()).add(name in summary["flags"])


WATCHED_FLAGS = ("autocorrelated", "slow_initial", "need_more_runs", "max_far", "cv_high")


def _score(result: RunStats, summary: dict[str, Any], truth: Callable[[float], float]) -> None:
    for name, q in QUANTILES:
        ci = summary["ci95"][name]
        result.no_interval.add(ci is None)
        result.coverage[name].add(ci is not None and ci[0] <= truth(q) <= ci[1])
    for flag in WATCHED_FLAGS:
        result.flag(flag, summary)


def single_run_scenario(
    draw: Callable[[random.Random, int], list[float]],
    truth: Callable[[float], float],
    n: int,
    reps: int,
    seed: int,
) -> RunStats:
    """One run of n samples per replication, summarised as the agent does (no stopping rule)."""
    rng = random.Random(seed)
    result = RunStats()
    for _ in range(reps):
        _score(result, stats.summarize(draw(rng, n), want_p99=False), truth)
    return result


def iid_scenario(dist: Dist, n: int, reps: int, seed: int) -> RunStats:
    return single_run_scenario(
        lambda rng, m: [dist.draw(rng) for _ in range(m)], dist.quantile, n, reps, seed
    )


def ar1_scenario(rho: float, n: int, reps: int, seed: int) -> RunStats:
    base = _lognormal(0.1)
    return single_run_scenario(lambda rng, m: ar1_series(rng, m, rho), base.quantile, n, reps, seed)


def multi_run_scenario(
    between: float, runs: int, n: int, reps: int, seed: int, sigma: float = 0.1
) -> RunStats:
    """R runs, each scaled by exp(between * Z): the truth is the quantile of the unscaled distribution."""
    rng = random.Random(seed)
    base = _lognormal(sigma)
    run_ids = [r for r in range(runs) for _ in range(n)]
    result = RunStats()
    for _ in range(reps):
        scale = [math.exp(between * rng.gauss(0, 1)) for _ in range(runs)]
        samples = [scale[r] * math.exp(MU + sigma * rng.gauss(0, 1)) for r in run_ids]
        _score(result, stats.summarize(samples, run_ids=run_ids, want_p99=False), base.quantile)
    return result


@dataclass(frozen=True)
class Phases:
    """A sustained run: burst (measured) phase and sustained phase lengths, one call's time, noise."""

    name: str
    burst_s: float
    sustained_s: float
    call_ns: float
    sigma: float = 0.1


SMOKE_PHASES = Phases("smoke-sized: 2 s burst, 60 s sustained, 5 ms calls", 2.0, 60.0, 5e6)
ACCEPTANCE_PHASES = Phases("acceptance-sized: 10 s burst, 15 min sustained, 50 ms calls", 10.0, 900.0, 50e6)


def drift_gate_scenario(
    phases: Phases, rise: float, reps: int, seed: int, threshold: float = 1.2
) -> dict[str, Tally]:
    """The thermal_drift verdicts of runs whose sustained phase rises linearly by `rise` (0 = stationary)."""
    rng = random.Random(seed)
    verdicts = {v: Tally() for v in ("pass", "fail", "inconclusive", "skipped")}
    n_burst = int(phases.burst_s * 1e9 / phases.call_ns)
    n_sustained = int(phases.sustained_s * 1e9 / phases.call_ns)
    burst_t = array("q", [int(i * phases.call_ns) for i in range(n_burst)])
    sustained_t = array("q", [int((n_burst + i) * phases.call_ns) for i in range(n_sustained)])
    for _ in range(reps):
        record = measure.RunRecord(mode="latency", loops=1)
        noise = phases.sigma
        record.measured = array(
            "d", [phases.call_ns * math.exp(noise * rng.gauss(0, 1)) for _ in range(n_burst)]
        )
        record.measured_t_ns = burst_t
        record.sustained = array(
            "d",
            [
                phases.call_ns * (1 + rise * i / n_sustained) * math.exp(noise * rng.gauss(0, 1))
                for i in range(n_sustained)
            ],
        )
        record.sustained_t_ns = sustained_t
        drift = measure.drift_of(record)
        summary = {"p95": phases.call_ns, "flags": [], "drift": drift}
        outcome = CellOutcome(1, "node", "w", "b", "mlx", {}, "w/b/mlx:cpu", "done", None, summary)
        [verdict] = thermal_drift([outcome], threshold)
        for name, tally in verdicts.items():
            tally.add(verdict.verdict == name)
    return verdicts


class FakeBatchClock:
    """A simulated clock, not a timed engine: run(loops) returns the elapsed ns of `loops` calls
    instantly, each batch's mean call time lognormal around per_call_ns."""

    def __init__(self, per_call_ns: float, sigma: float, seed: int) -> None:
        self.per_call_ns, self.sigma = per_call_ns, sigma
        self.rng = random.Random(seed)

    def run(self, loops: int) -> int:
        return round(loops * self.per_call_ns * math.exp(self.sigma * self.rng.gauss(0, 1)))


def _settings(**overrides: Any) -> MeasureSettings:
    base: dict[str, Any] = {
        "runs": 1,
        "warmup_min": 2,
        "warmup_max": 20,
        "min_samples": 130,
        "min_duration_s": 0.0,
        "max_duration_s": 120.0,
        "max_samples": 5000,
        "epsilon": 0.02,
        "check_every": 50,
    }
    return MeasureSettings.from_dict(base | overrides)


def micro_op_scenario(per_call_ns: float, reps: int, seed: int, sigma: float = 0.05) -> dict[str, float]:
    """Mean relative error of the published p95 (float division) and of the old elapsed // loops."""
    truth = per_call_ns * math.exp(sigma * _NORMAL.inv_cdf(0.95))
    new, old, covered = [], [], Tally()
    for r in range(reps):
        record = Harness(
            FakeBatchClock(per_call_ns, sigma, seed + r),
            _settings(),
            lambda *a: None,
            clock_resolution_ns=1.0,
        ).measure_run()
        summary = stats.summarize(
            record.measured_elapsed, loops=record.loops, stop_reasons=[record.stop_reason]
        )
        new.append(summary["p95"] / truth - 1)
        truncated = sorted(x // record.loops for x in record.measured_elapsed)
        old.append(stats.nearest_rank(truncated, 0.95) / truth - 1)
        lo, hi = summary["ci95"]["p95"]
        covered.add(lo <= truth <= hi)
    return {"bias": statistics.fmean(new), "old_bias": statistics.fmean(old), "coverage": covered.rate}


def early_stop_scenario(sigma: float, reps: int, seed: int, max_samples: int = 600) -> dict[str, Tally]:
    """Coverage of the published p95 interval, split by how the run stopped (latency mode, 100 ms calls).

    max_samples = 600 stands for 60 s of 100 ms calls: the case where early stops were the weak spot.
    """
    truth = 1e8 * math.exp(sigma * _NORMAL.inv_cdf(0.95))
    tallies: dict[str, Tally] = {}
    settings = _settings(max_samples=max_samples)
    for r in range(reps):
        record = Harness(
            FakeBatchClock(1e8, sigma, seed + r),
            settings,
            lambda *a: None,
            force_mode="latency",
            clock_resolution_ns=1.0,
        ).measure_run()
        summary = stats.summarize(record.measured_elapsed, stop_reasons=[record.stop_reason], want_p99=False)
        lo, hi = summary["ci95"]["p95"]
        tallies.setdefault(record.stop_reason, Tally()).add(lo <= truth <= hi)
    return tallies


# --- the acceptance checks ---------------------------------------------------------------------------


def test_iid_coverage_and_flag_rates() -> None:
    for n in (130, 662):
        pooled = {name: Tally() for name, _ in QUANTILES}
        for i, dist in enumerate(DISTS):
            result = iid_scenario(dist, n, reps=200, seed=100 * n + i)
            for name, tally in result.coverage.items():
                pooled[name].hits += tally.hits
                pooled[name].total += tally.total
                assert_at_least(tally, 0.93, f"i.i.d. {dist.name} n={n} {name} coverage")
            # Finding 8: on i.i.d. data no flag fires in more than ~5% of runs.
            for flag in ("autocorrelated", "slow_initial"):
                assert_at_most(result.flags[flag], 0.05, f"{flag} on i.i.d. {dist.name} n={n}")
            assert result.flags["max_far"].hits == 0 and result.flags["cv_high"].hits == 0
        for name, tally in pooled.items():
            assert_at_least(tally, 0.93, f"i.i.d. n={n} {name} coverage, all distributions")


def test_ar1_coverage_after_widening_and_the_autocorrelated_flag() -> None:
    result = ar1_scenario(0.5, 662, reps=500, seed=7)
    for name, tally in result.coverage.items():
        assert_at_least(tally, 0.92, f"AR(1) rho=0.5 n=662 {name} coverage")
    assert_at_least(result.flags["autocorrelated"], 0.95, "autocorrelated flag on AR(1) rho=0.5")
    assert result.no_interval.hits == 0


def test_multi_run_p95_interval_coverage() -> None:
    for between in (0.02, 0.05):
        result = multi_run_scenario(between, runs=5, n=662, reps=250, seed=int(1000 * between))
        assert_at_least(result.coverage["p95"], 0.92, f"multi-run p95 coverage, between-run sd {between}")
        assert_at_least(result.coverage["p50"], 0.92, f"multi-run p50 coverage, between-run sd {between}")


def test_need_more_runs_is_rare_without_between_run_variance() -> None:
    # Runs that each reach epsilon (sigma 0.1, n = 662 gives a p95 within-run half-width ~2%).
    result = multi_run_scenario(0.0, runs=5, n=662, reps=150, seed=11)
    assert_at_most(result.flags["need_more_runs"], 0.05, "need_more_runs with no between-run variance")
    assert_at_least(result.coverage["p95"], 0.92, "multi-run p95 coverage, no between-run variance")


def test_drift_gate_fails_a_linear_rise_and_passes_stationary_runs() -> None:
    rising = drift_gate_scenario(SMOKE_PHASES, 0.25, reps=100, seed=21)
    assert_at_least(rising["fail"], 0.80, "drift gate fails a +25% linear rise")
    assert rising["pass"].hits == 0  # uncertain cases are inconclusive, never pass
    stationary = drift_gate_scenario(SMOKE_PHASES, 0.0, reps=100, seed=22)
    assert_at_most(stationary["fail"], 0.05, "drift gate fails a stationary run")
    assert_at_most(stationary["inconclusive"], 0.05, "drift gate inconclusive on a stationary run")


def test_micro_op_p95_bias_at_20_ns() -> None:
    result = micro_op_scenario(20.0, reps=40, seed=31)
    assert abs(result["bias"]) < 0.005, result
    assert result["old_bias"] < -0.02  # integer division, for reference


def test_early_stops_cover() -> None:
    tallies = early_stop_scenario(0.1, reps=700, seed=41)
    converged = tallies["converged"]
    assert converged.total >= 40  # the rule does end some runs early in this case
    assert_at_least(converged, 0.92, "coverage of runs the stopping rule ended")
