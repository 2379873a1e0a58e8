"""Probe fan-out over loopback sshd nodes: 1, 8 and 32 nodes, cold and warm; and CLI start-up.

Run: `.venv/bin/python tests/bench/bench_probe.py` (as root, with /usr/sbin/sshd).

cold = new connections for every probe (handshake, agent hash check, agent run); the agent is
       deployed once beforehand, so no run pays for the upload.
warm = the same FleetConnections reused (connections open, agent known to be present).
Each figure is the median of REPEATS runs. Targets: 32 cold within 3x of 1 node, warm within 1.5x.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from sshd import SshdFleet, sshd_missing_reason  # noqa: E402

from fleet_tui.probe import FleetConnections, probe_fleet  # noqa: E402
from fleet_tui.transport.base import Transport, open_transport  # noqa: E402

SIZES = (1, 8, 32)
REPEATS = 3
HELP_RUNS = 10


async def _probe_once(fleet: SshdFleet, count: int, pool: FleetConnections | None) -> float:
    started = time.perf_counter()
    results = [r async for r in probe_fleet(fleet.nodes[:count], fleet.settings, pool)]
    wall = time.perf_counter() - started
    failed = [f"{r.node.name}: {r.error}" for r in results if not r.ok]
    if failed:
        raise SystemExit("probe failed: " + "; ".join(failed))
    return wall


async def _true_once(fleet: SshdFleet, count: int, open_ones: list[Transport] | None) -> float:
    """Transport-only fan-out: `true` on every node (cold: connect first, then close)."""
    started = time.perf_counter()
    if open_ones is not None:
        await asyncio.gather(*(t.run(["true"]) for t in open_ones[:count]))
        return time.perf_counter() - started

    async def one(index: int) -> None:
        transport = open_transport(fleet.nodes[index], fleet.settings)
        try:
            await transport.run(["true"])
        finally:
            await transport.close()

    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - started


async def bench_transport(fleet: SshdFleet) -> dict[tuple[str, int], float]:
    figures: dict[tuple[str, int], float] = {}
    transports = [open_transport(n, fleet.settings) for n in fleet.nodes]
    await asyncio.gather(*(t.connect() for t in transports))
    try:
        for count in SIZES:
            figures[("cold", count)] = statistics.median(
                [await _true_once(fleet, count, None) for _ in range(REPEATS)]
            )
            figures[("warm", count)] = statistics.median(
                [await _true_once(fleet, count, transports) for _ in range(REPEATS)]
            )
    finally:
        await asyncio.gather(*(t.close() for t in transports))
    return figures


def _table(title: str, figures: dict[tuple[str, int], float]) -> None:
    print(title)
    print(f"{'mode':<5} {'nodes':>5} {'wall s':>8} {'x 1 node':>9}  target")
    for mode, target in (("cold", 3.0), ("warm", 1.5)):
        base = figures[(mode, 1)]
        for count in SIZES:
            wall = figures[(mode, count)]
            ratio = wall / base
            verdict = "" if count == 1 else (f"<= {target}x " + ("ok" if ratio <= target else "MISSED"))
            print(f"{mode:<5} {count:>5} {wall:>8.3f} {ratio:>9.2f}  {verdict}")


async def bench(fleet: SshdFleet) -> dict[tuple[str, int], float]:
    figures: dict[tuple[str, int], float] = {}
    await _probe_once(fleet, max(SIZES), None)  # deploy once, so cold runs measure probing only
    for count in SIZES:
        figures[("cold", count)] = statistics.median(
            [await _probe_once(fleet, count, None) for _ in range(REPEATS)]
        )
        async with FleetConnections(fleet.settings) as pool:
            await _probe_once(fleet, count, pool)  # open the connections
            figures[("warm", count)] = statistics.median(
                [await _probe_once(fleet, count, pool) for _ in range(REPEATS)]
            )
    return figures


def help_startup_s() -> float:
    exe = REPO / ".venv" / "bin" / "fleet-tui"
    times = []
    for _ in range(HELP_RUNS):
        started = time.perf_counter()
        subprocess.run([str(exe), "--help"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    reason = sshd_missing_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        root = Path(tmp)
        os.environ["HOME"] = str(root / "home")
        os.environ["XDG_CACHE_HOME"] = str(root / "home" / ".cache")
        os.environ.pop("SSH_AUTH_SOCK", None)
        (root / "home").mkdir()
        started = time.perf_counter()
        with SshdFleet(root / "fleet", max(SIZES)) as fleet:
            print(f"started {max(SIZES)} sshd nodes in {time.perf_counter() - started:.2f} s")
            figures = asyncio.run(bench(fleet))
            transport_figures = asyncio.run(bench_transport(fleet))
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (all nodes share them)")
    _table("probe (connect + agent hash check + agent `probe` with facts):", figures)
    _table("transport only (connect + `true`), the controller's fan-out without node CPU:", transport_figures)
    print(f"fleet-tui --help start-up: {help_startup_s() * 1000:.0f} ms (median of {HELP_RUNS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
