"""Sweep scheduler figures on real loopback sshd nodes: `.venv/bin/python tests/bench/bench_sweep.py`.

Needs root and /usr/sbin/sshd (as the sshd tests). Prints:

1. Scheduler overhead per cell on one node: the controller-side wall time of the node's work
   minus the agent's own time (hello -> done of each job, as received), divided by the cells.
   That is what the scheduler adds: connect, agent and artifact checks, process start, job
   write, event decoding and the SQLite commits it waits for. Target < 50 ms per cell. The
   agent-reported measuring time (sum of cell duration_s) is printed for scale.
2. Parallelism: a sweep of 8 sshd nodes (one cell each): the scheduling phase's wall time vs
   the slowest node's own share. Target <= 1.3x.

Options: --nodes N (default 8), --cells N per node in part 1 (default 6).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for `sshd`

from sshd import SshdFleet, sshd_missing_reason  # noqa: E402

from fleet_tui.config.inventory import Node  # noqa: E402
from fleet_tui.config.spec import parse_spec  # noqa: E402
from fleet_tui.fleet.session import FleetConnections  # noqa: E402
from fleet_tui.store import Store  # noqa: E402
from fleet_tui.sweep.artifacts import build_artifacts  # noqa: E402
from fleet_tui.sweep.events import Progress  # noqa: E402
from fleet_tui.sweep.scheduler import SweepResult, run_sweep  # noqa: E402

BUCKETS = {"mlp": ("b1", "b8", "b32")}


def spec_toml(buckets: tuple[str, ...], engines: str) -> str:
    lines = ['name = "bench"', "[[workload]]", 'name = "mlp"']
    for bucket in buckets:
        lines += ["  [[workload.bucket]]", f'  name = "{bucket}"', "  budget_ms = 1000.0"]
    lines += [
        "[engines]",
        engines,
        "[measure]",
        "runs = 2",
        "warmup_min = 1",
        "warmup_max = 5",
        "min_samples = 30",
        "min_duration_s = 0.2",
        "max_duration_s = 0.5",
        "max_samples = 100000",
        "epsilon = 0.5",
        "check_every = 10",
        "sustained_minutes = 0",
        "cooldown_s = 0",
        "wait_nominal_s = 0",
        "numeric = false",
        "[scheduler]",
        'on_busy = "skip"',
    ]
    return "\n".join(lines) + "\n"


async def sweep(fleet: SshdFleet, nodes: list[Node], text: str, db: Path) -> tuple[SweepResult, float]:
    spec = parse_spec(text, source="bench")
    artifacts = await build_artifacts([w.name for w in spec.workloads], ["fp16"])
    with Store.open(db) as store:
        async with FleetConnections(fleet.settings) as connections:
            started = time.perf_counter()
            result = await run_sweep(store, spec, nodes, artifacts, connections, Progress(), asyncio.Event())
            return result, time.perf_counter() - started


def part_overhead(root: Path, cells_wanted: int) -> None:
    fleet = SshdFleet(root / "one", 1)
    try:
        buckets = BUCKETS["mlp"][: max(1, min(3, cells_wanted // 2))]
        text = spec_toml(buckets, 'numpy = [{ dtype = "fp64" }, { dtype = "fp32" }]')
        # A first sweep deploys the agent and uploads the artifact; the second is the steady state.
        asyncio.run(sweep(fleet, fleet.nodes, text, root / "warm.db"))
        result, _ = asyncio.run(sweep(fleet, fleet.nodes, text, root / "one.db"))
    finally:
        fleet.close()
    report = result.nodes[fleet.nodes[0].name]
    cells = report.cells
    overhead = (report.wall_s - report.agent_s) / cells
    print("1. scheduler overhead (1 sshd node, steady state: agent and artifact already on the node)")
    print(f"   cells {cells} in {report.jobs} job(s); node wall {report.wall_s:.3f} s")
    print(
        f"   agent's own time (hello->done) {report.agent_s:.3f} s; agent start (start->hello) "
        f"{report.launch_s:.3f} s; agent-reported measuring {report.measured_s:.3f} s"
    )
    print(
        f"   overhead per cell beyond the agent's time: {overhead * 1e3:.1f} ms "
        f"(incl. agent start {report.launch_s / cells * 1e3:.1f} ms)  target < 50 ms: "
        f"{'PASS' if overhead < 0.05 else 'FAIL'}"
    )


def part_parallel(root: Path, count: int) -> None:
    fleet = SshdFleet(root / "many", count)
    try:
        text = spec_toml(("b1",), 'numpy = [{ dtype = "fp32" }]')
        asyncio.run(sweep(fleet, fleet.nodes, text, root / "many-warm.db"))
        result, total = asyncio.run(sweep(fleet, fleet.nodes, text, root / "many.db"))
    finally:
        fleet.close()
    shares = {name: r.wall_s for name, r in result.nodes.items()}
    slowest = max(shares.values())
    print(
        f"2. parallelism ({count} sshd nodes, 1 cell each, nodes measure concurrently on "
        f"{os.cpu_count()} cores)"
    )
    print(f"   node shares: min {min(shares.values()):.2f} s, max {slowest:.2f} s")
    print(
        f"   scheduling phase (node tasks incl. their end probes) {result.schedule_s:.2f} s "
        f"= {result.schedule_s / slowest:.2f}x the slowest node's share"
    )
    print(
        f"   whole sweep (probe start, plan, store, node tasks, end probes, gates) {total:.2f} s "
        f"= {total / slowest:.2f}x the slowest node's share  target <= 1.3x: "
        f"{'PASS' if total <= 1.3 * slowest else 'FAIL'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--cells", type=int, default=6)
    args = parser.parse_args()
    reason = sshd_missing_reason()
    if reason:
        print(f"skipped: {reason}")
        return
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        root = Path(tmp)
        os.environ["HOME"] = str(root / "controller-home")
        os.environ.pop("SSH_AUTH_SOCK", None)
        part_overhead(root, args.cells)
        part_parallel(root, args.nodes)


if __name__ == "__main__":
    main()
