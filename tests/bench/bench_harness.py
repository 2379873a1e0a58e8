"""Benchmarks of the measurement harness itself (a script; prints figures, asserts nothing).

    .venv/bin/python tests/bench/bench_harness.py [--quick] [--workloads mlp,convnet,...]

1. Harness overhead per sample vs a bare loop calling the same no-op with the same clock reads.
2. Samples per second through the protocol (Emitter to /dev/null and to a pipe).
3. MLX cpu vs numpy latency for each workload's smallest bucket: the harness median beside a
   plain hand-timed loop of the same call (they should agree within 5%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from node_agent import measure  # noqa: E402
from node_agent.protocol import Emitter  # noqa: E402


def noop() -> None:
    return None


class NoopEngine:
    def run(self, loops: int) -> int:
        perf = time.perf_counter_ns
        t0 = perf()
        for _ in range(loops):
            noop()
        return perf() - t0


def bare_loop(n: int) -> float:
    """ns per sample of the simplest loop that times the same call into an array."""
    perf = time.perf_counter_ns
    buf = array("q", bytes(8 * n))
    start = perf()
    for i in range(n):
        t0 = perf()
        noop()
        buf[i] = perf() - t0
    return (perf() - start) / n


def harness_loop(n: int) -> float:
    settings = measure.MeasureSettings.from_dict(
        {"min_samples": n, "max_samples": n, "min_duration_s": 0.0, "max_duration_s": 600.0}
    )
    harness = measure.Harness(NoopEngine(), settings, lambda *a: None)
    record = measure.RunRecord(mode="latency", loops=1)
    start = time.perf_counter_ns()
    harness.measure(record)
    return (time.perf_counter_ns() - start) / len(record.measured)


def clock_read_cost(n: int) -> float:
    perf = time.perf_counter_ns
    start = perf()
    for _ in range(n):
        perf()
    return (perf() - start) / n


def bench_overhead(n: int) -> None:
    bare = min(bare_loop(n) for _ in range(5))
    harness = min(harness_loop(n) for _ in range(5))
    clock = min(clock_read_cost(n) for _ in range(5))
    print("1. harness overhead per sample (no-op call, best of 5)")
    print(f"   bare loop (2 clock reads + store):          {bare:8.1f} ns/sample")
    print(f"   harness (engine.run + 2 harness clock reads): {harness:8.1f} ns/sample")
    print(f"   one perf_counter_ns() read:                  {clock:8.1f} ns")
    print(f"   harness - bare:                              {harness - bare:8.1f} ns/sample")
    print(f"   harness - bare - 2 extra clock reads:        {harness - bare - 2 * clock:8.1f} ns/sample")


def bench_emit(n_batches: int, batch: int) -> None:
    ns = list(range(10_000_000, 10_000_000 + batch))
    t_ns = list(range(batch))
    print(f"2. samples through the protocol (batches of {batch})")
    with open("/dev/null", "w") as sink:
        out = Emitter(sink)
        start = time.perf_counter()
        for _ in range(n_batches):
            out.emit("samples", cell_id="c", run=0, phase="measure", ns=ns, t_ns=t_ns, thermal=None)
        rate = n_batches * batch / (time.perf_counter() - start)
    print(f"   Emitter -> /dev/null: {rate / 1e6:6.2f} M samples/s")
    reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert reader.stdin is not None
    out = Emitter(reader.stdin)
    start = time.perf_counter()
    for _ in range(n_batches):
        out.emit("samples", cell_id="c", run=0, phase="measure", ns=ns, t_ns=t_ns, thermal=None)
    rate = n_batches * batch / (time.perf_counter() - start)
    reader.stdin.close()
    reader.wait()
    print(f"   Emitter -> pipe (cat): {rate / 1e6:6.2f} M samples/s")


def hand_loop(engine: Any, seconds: float) -> list[int]:
    """Per-call ns of the engine's own call, timed by hand (no harness)."""
    model = engine.model
    forward, ops, weights, inputs = model.module.forward, engine.ops, engine._weights, engine._inputs
    perf = time.perf_counter_ns
    samples: list[int] = []
    end = perf() + int(seconds * 1e9)
    if engine.name == "mlx":
        evaluate = engine.mx.eval
        while perf() < end:
            t0 = perf()
            evaluate(forward(ops, weights, inputs))
            samples.append(perf() - t0)
    else:
        while perf() < end:
            t0 = perf()
            forward(ops, weights, inputs)
            samples.append(perf() - t0)
    return samples


def bench_engines(workloads: list[str], seconds: float) -> None:
    from node_agent.artifacts import build_artifact
    from node_agent.engines import make_engine
    from node_agent.workloads import get_workload

    cache = Path("/tmp/fleet-bench-artifacts")
    print(f"3. engines, smallest bucket, harness median vs hand-timed median ({seconds:.0f} s each)")
    print(
        f"   {'workload':12} {'bucket':7} {'engine':10} {'mode':7} "
        f"{'harness p50':>12} {'hand p50':>12} {'diff':>7}"
    )
    for name in workloads:
        workload = get_workload(name)
        bucket = workload.buckets[0].name
        artifact = build_artifact(name, cache, eval_count=2)
        manifest = json.loads((artifact / "manifest.json").read_text())
        for engine_name, config in (
            ("numpy", {"dtype": "fp32"}),
            ("mlx", {"device": "cpu", "dtype": "fp32"}),
        ):
            engine = make_engine(engine_name, config)
            engine.load(artifact, manifest, bucket)
            settings = measure.MeasureSettings.from_dict(
                {
                    "min_samples": 130,
                    "min_duration_s": seconds,
                    "max_duration_s": seconds * 2,
                    "warmup_max": 50,
                    "epsilon": 0.01,
                }
            )
            harness = measure.Harness(engine, settings, lambda *a: None)
            record = harness.measure_run()
            hand = hand_loop(engine, seconds)
            h50 = statistics.median(record.measured)
            p50 = statistics.median(hand)
            label = f"{engine_name}-{config.get('device', 'cpu')}"
            print(
                f"   {name:12} {bucket:7} {label:10} {record.mode:7} "
                f"{h50 / 1e3:10.1f}µs {p50 / 1e3:10.1f}µs {100 * (h50 - p50) / p50:+6.1f}%"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and shorter runs")
    parser.add_argument("--workloads", default="mlp,convnet,decoder-step,minilm-l6")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    print(f"python {sys.version.split()[0]}, clock {measure.clock_info()}")
    bench_overhead(n)
    bench_emit(200 if args.quick else 1000, 1000)
    from node_agent.workloads import workload_names

    wanted = [w for w in args.workloads.split(",") if w in workload_names()]
    bench_engines(wanted, 2.0 if args.quick else 5.0)


if __name__ == "__main__":
    main()
