"""Benchmarks of the measurement harness itself (a script; prints figures, asserts nothing).

    .venv/bin/python tests/bench/bench_harness.py [--quick] [--workloads mlp,convnet,...]

1. Harness overhead per sample vs a bare loop calling the same no-op with the same clock reads.
2. Samples per second through the protocol (Emitter to /dev/null and to a pipe).
3. MLX cpu vs numpy latency for each workload's smallest bucket: the harness median beside a
   plain hand-timed loop of the same call, in interleaved blocks (AB BA AB ...) so machine load
   changes hit both alike (they should agree within 5%). Slow engines (MiniLM on the Linux
   mlx[cpu] wheel, which links the reference BLAS) get a per-block sample count instead of a
   duration, so the whole script finishes in a few minutes.
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


MLX_BLAS_NOTE = (
    "Linux mlx[cpu] wheel: links the slow reference BLAS (MiniLM on MLX cpu ~230 ms/call); "
    "these MLX figures say nothing about Apple silicon"
)


def hand_loop(engine: Any, calls: int) -> list[int]:
    """Per-call ns of the engine's own call (what its run() times), timed by hand (no harness)."""
    model = engine._model
    forward, ops, weights, inputs = model.module.forward, engine.ops, engine._weights, engine._inputs
    perf = time.perf_counter_ns
    samples = array("q", bytes(8 * calls))
    if engine.name == "mlx":
        evaluate = engine.mx.eval
        for i in range(calls):
            t0 = perf()
            evaluate(forward(ops, weights, inputs))
            samples[i] = perf() - t0
    else:
        for i in range(calls):
            t0 = perf()
            forward(ops, weights, inputs)
            samples[i] = perf() - t0
    return list(samples)


def harness_block(harness: measure.Harness, mode: str, loops: int) -> list[float]:
    """One harness measurement block (warmup done once before), per-call ns samples."""
    record = measure.RunRecord(mode=mode, loops=loops)
    harness.measure(record)
    return list(record.measured)


def interleaved(
    engine: Any, blocks: int, block_s: float, min_block: int
) -> tuple[str, list[float], list[int]]:
    """Harness and hand loop in alternating blocks (AB BA AB ...), the same calls per block.

    The harness picks its mode and warms up once; each block then holds a fixed number of
    harness samples (about block_s of work, at least min_block) and the hand loop times the same
    number of calls one by one. Returns (mode, harness samples, hand samples).
    """
    probe_settings = measure.MeasureSettings.from_dict(
        {"warmup_max": 50, "min_duration_s": 0.0, "max_duration_s": 3 * block_s}
    )
    warm = measure.Harness(engine, probe_settings, lambda *a: None)
    record = measure.RunRecord(mode="latency", loops=1)
    warm.choose_mode(record)
    warm.warmup(record)
    sample_ns = statistics.median(record.warmup[-10:]) * record.loops
    per_block = max(min_block, int(block_s * 1e9 / max(sample_ns, 1)))
    settings = measure.MeasureSettings.from_dict(
        {"min_samples": per_block, "max_samples": per_block, "min_duration_s": 0.0, "max_duration_s": 600.0}
    )
    harness = measure.Harness(engine, settings, lambda *a: None)
    by_harness: list[float] = []
    by_hand: list[int] = []
    for block in range(blocks):
        steps = ("harness", "hand") if block % 2 == 0 else ("hand", "harness")
        for step in steps:
            if step == "harness":
                by_harness += harness_block(harness, record.mode, record.loops)
            else:
                by_hand += hand_loop(engine, per_block * record.loops)
    return record.mode, by_harness, by_hand


def bench_engines(workloads: list[str], blocks: int, block_s: float, slow_block: int) -> None:
    from node_agent.artifacts import build_artifact
    from node_agent.engines import make_engine
    from node_agent.workloads import get_workload

    cache = Path("/tmp/fleet-bench-artifacts")
    # Build (or reuse) every artifact first, so the converters' chatter stays out of the table.
    artifacts = {name: build_artifact(name, cache, eval_count=2) for name in workloads}
    print(
        f"3. engines, smallest bucket: harness vs hand-timed, {blocks} interleaved blocks each "
        f"(AB BA AB ...), ~{block_s:.1f} s per block, >= {slow_block} samples per block;"
    )
    print("   medians of all samples; target |diff| <= 5%. micro = harness samples are per-call means")
    print("   of a ~10 ms batch, the hand loop times single calls (adds ~2 clock reads per call).")
    print(f"   NOTE {MLX_BLAS_NOTE}.")
    print(
        f"   {'workload':12} {'bucket':7} {'engine':10} {'mode':6} {'n harness':>9} {'n hand':>8} "
        f"{'harness p50':>12} {'hand p50':>12} {'diff':>7}  verdict"
    )
    for name in workloads:
        workload = get_workload(name)
        bucket = workload.buckets[0].name
        artifact = artifacts[name]
        manifest = json.loads((artifact / "manifest.json").read_text())
        for engine_name, config in (
            ("numpy", {"dtype": "fp32"}),
            ("mlx", {"device": "cpu", "dtype": "fp32"}),
        ):
            engine = make_engine(engine_name, config)
            engine.load(artifact, manifest, bucket)
            mode, by_harness, by_hand = interleaved(engine, blocks, block_s, slow_block)
            h50 = statistics.median(by_harness)
            p50 = statistics.median(by_hand)
            diff = 100 * (h50 - p50) / p50
            label = f"{engine_name}-{config.get('device', 'cpu')}"
            verdict = "ok" if abs(diff) <= 5.0 else "MISSED"
            note = " (ref BLAS)" if engine_name == "mlx" else ""
            print(
                f"   {name:12} {bucket:7} {label:10} {mode:6} {len(by_harness):>9} {len(by_hand):>8} "
                f"{h50 / 1e3:10.1f}µs {p50 / 1e3:10.1f}µs {diff:+6.1f}%  {verdict}{note}",
                flush=True,
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
    if args.quick:
        bench_engines(wanted, blocks=3, block_s=0.3, slow_block=5)
    else:
        bench_engines(wanted, blocks=5, block_s=1.0, slow_block=10)


if __name__ == "__main__":
    main()
