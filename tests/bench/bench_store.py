"""Store ingest benchmark: sample batches committed one transaction each, as a sweep writes them.

Run:  .venv/bin/python tests/bench/bench_store.py [--batches 400] [--batch-size 500] [--reader]

Target (issue 4): at least 100k samples/s with 500-sample batches and one commit per batch.
Prints samples/s, batches (commits)/s, per-batch commit latency p50/p99, the read-back rate,
and the on-disk size per sample. `--reader` runs a concurrent reader (as the TUI would) in
another thread and connection while the writer writes.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import parse_spec
from fleet_tui.store import Store
from fleet_tui.sweep.plan import build_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the shared spec writer
from spec_fixtures import spec_toml  # noqa: E402

SPEC = spec_toml("bench", engines='mlx = [{ device = "cpu", dtype = "fp32" }]')
TARGET_SAMPLES_PER_S = 100_000


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run(batches: int, batch_size: int, with_reader: bool, directory: Path) -> float:
    path = directory / "bench.db"
    rng = random.Random(1)
    # Realistic values: ~1-3 ms latencies and monotonically increasing start times.
    payload = [[rng.randint(1_000_000, 3_000_000) for _ in range(batch_size)] for _ in range(16)]
    starts = [[i * 2_000_000 + j for j in range(batch_size)] for i in range(16)]
    with Store.open(path) as store:
        spec = parse_spec(SPEC)
        run_id = store.create_run(spec)
        [cell_id] = store.add_cells(run_id, build_plan(spec, [Node(name="n", host="h")]).cells)
        store.mark_cell(cell_id, "running", attempt_inc=True)

        stop = threading.Event()
        reads: list[int] = []

        def reader() -> None:
            with Store.open(path) as view:
                while not stop.is_set():
                    reads.append(view.sample_count(cell_id))
                    view.list_runs()
                    time.sleep(0.01)

        thread = threading.Thread(target=reader) if with_reader else None
        if thread:
            thread.start()
        latencies: list[float] = []
        began = time.perf_counter()
        for i in range(batches):
            t0 = time.perf_counter()
            store.add_samples(cell_id, i % 5, "measure", payload[i % 16], starts[i % 16])
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - began
        stop.set()
        if thread:
            thread.join()

        total = batches * batch_size
        t0 = time.perf_counter()
        values = store.samples(cell_id)
        read_s = time.perf_counter() - t0
        assert len(values) == total, (len(values), total)

    size = sum(p.stat().st_size for p in directory.glob("bench.db*"))
    latencies.sort()
    rate = total / elapsed
    print(f"ingest: {total:,} samples in {batches} batches of {batch_size} ({elapsed:.3f} s)")
    print(
        f"  {rate:,.0f} samples/s, {batches / elapsed:,.0f} commits/s "
        f"(target >= {TARGET_SAMPLES_PER_S:,} samples/s)"
    )
    print(
        f"  commit latency per batch: p50 {_percentile(latencies, 0.5) * 1e3:.3f} ms, "
        f"p99 {_percentile(latencies, 0.99) * 1e3:.3f} ms"
    )
    print(f"read-back: {total:,} samples in {read_s * 1e3:.1f} ms ({total / read_s:,.0f} samples/s)")
    print(f"disk: {size / total:.1f} bytes/sample (ns + t_ns, int64 each, WAL included)")
    if with_reader:
        print(
            f"concurrent reader: {len(reads)} reads, "
            f"last saw {reads[-1] if reads else 0:,} samples, no errors"
        )
    print("PASS" if rate >= TARGET_SAMPLES_PER_S else "BELOW TARGET")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--reader", action="store_true", help="run a concurrent reader thread")
    parser.add_argument("--dir", type=Path, help="directory for the database (default: a temp dir)")
    args = parser.parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        run(args.batches, args.batch_size, args.reader, args.dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run(args.batches, args.batch_size, args.reader, Path(tmp))


if __name__ == "__main__":
    main()
