"""Timing of node_agent.stats on 100k samples: `.venv/bin/python tests/bench/bench_stats.py`.

Not collected by pytest (tests/bench is in norecursedirs). Prints the median of a few runs.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from node_agent import stats


def _time(label: str, fn: Callable[[], object], repeats: int = 5) -> None:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    print(f"{label:<48} median {statistics.median(timings) * 1e3:8.1f} ms  (min {min(timings) * 1e3:.1f})")


def main() -> None:
    rng = random.Random(0)
    n = 100_000
    samples = [int(rng.lognormvariate(13.0, 0.2)) for _ in range(n)]
    burst = samples[: n // 10]
    sustained = samples[n // 10 :]
    drifting = [int(x * (1.0 + 0.1 * i / len(sustained))) for i, x in enumerate(sustained)]
    run_ids = [i * 10 // n for i in range(n)]
    _time("summarize(100k)", lambda: stats.summarize(samples))
    _time("summarize(100k, run_ids=10 runs)", lambda: stats.summarize(samples, run_ids=run_ids))
    _time("drift(100k, stationary)", lambda: stats.drift(burst, sustained))
    _time("drift(100k, 10% ramp)", lambda: stats.drift(burst, drifting))
    _time("quantile_ci_ranks(100k, .95, .95)", lambda: stats.quantile_ci_ranks(n, 0.95, 0.95))
    _time("early_stopping_rank(100k, .99) (cold cache)", lambda: _cold_es(n))
    ordered = sorted(samples)
    _time("p95_ci_converged(100k, 0.02)", lambda: stats.p95_ci_converged(ordered, 0.02))
    print(
        "drift(ramp):",
        {k: v for k, v in stats.drift(burst, drifting).items() if k not in ("burst", "sustained")},
    )


def _cold_es(n: int) -> int | None:
    stats.es_min_passing.cache_clear()
    return stats.early_stopping_rank(n, 0.99)


if __name__ == "__main__":
    main()
