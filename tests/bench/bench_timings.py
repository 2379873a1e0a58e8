"""Timing figures the unit and integration tests check only as behaviour: `.venv/bin/python
tests/bench/bench_timings.py [--repeats 5] [--no-sshd]`.

A test on a busy 2-core box must not pass or fail on how long something took, so the tests assert
what happened (the engine ran every loop, the agent was stopped, the error was a refusal, the
configured timeout ended the wait) and this script prints how long it took. Figures are medians of
`--repeats` runs. Nothing here passes or fails; read the figures against the notes printed with them.

Parts: node readers (read_conditions, collect_facts), engine timing (run(8) against run(1) for the
numpy and MLX cpu engines on the mlp b8 artifact), the controller stopping a lying local agent, and
with root + /usr/sbin/sshd: a killed sshd refusing, a silent server timing out, a remote `sleep 60`
terminated, and a probe fan-out with one killed node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from sshd import SshdFleet, sshd_missing_reason  # noqa: E402

from fleet_tui.config.inventory import Node  # noqa: E402
from fleet_tui.fleet.agent import agent_events  # noqa: E402
from fleet_tui.fleet.probe import probe_fleet  # noqa: E402
from fleet_tui.fleet.transport import NodeError, open_transport  # noqa: E402
from fleet_tui.fleet.transport.local import LocalTransport  # noqa: E402


def median_s(repeats: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def median_async_s(repeats: int, work: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def line(name: str, value: str, note: str = "") -> None:
    print(f"  {name:<58} {value:>12}" + (f"   {note}" if note else ""))


def bench_readers(repeats: int) -> None:
    from node_agent import facts, thermal

    print("node readers (in this process):")
    thermal.read_conditions()  # the first ps exec warms the page cache
    per_call = median_s(repeats, thermal.read_conditions)
    line("thermal.read_conditions per call", f"{per_call * 1000:.1f} ms", "budget 1 s: called every 5 s")
    seconds = median_s(repeats, facts.collect_facts)
    line("facts.collect_facts", f"{seconds * 1000:.1f} ms", "budget 1 s on Linux")


def bench_engines(root: Path, repeats: int) -> None:
    from node_agent.artifacts import build_artifact
    from node_agent.engines import make_engine

    print("engine timing (mlp b8; min of 5 run(1), min of 3 run(8)):")
    artifact = build_artifact("mlp", root, eval_count=2)
    manifest = json.loads((artifact / "manifest.json").read_text())
    for engine_name, config in (
        ("numpy", {"dtype": "fp32"}),
        ("mlx", {"device": "cpu", "dtype": "fp32"}),
        ("mlx", {"device": "cpu", "dtype": "fp16"}),
    ):
        engine = make_engine(engine_name, config)
        if engine.check_supported() is not None:
            line(f"{engine_name} {config}", "skipped", str(engine.check_supported()))
            continue
        engine.load(artifact, manifest, "b8")
        ratios = []
        for _ in range(repeats):
            one = min(engine.run(1) for _ in range(5))
            eight = min(engine.run(8) for _ in range(3))
            ratios.append(eight / one)
        line(
            f"{engine_name} {config} run(8) / run(1)",
            f"{statistics.median(ratios):.2f}x",
            "~8 when the timed region covers every call",
        )


LYING_AGENT = """\
import json, time
print(json.dumps({"schema": 1, "type": "hello"}), flush=True)
print("Traceback (most recent call last): this is not JSON", flush=True)
time.sleep(60)
"""


async def bench_agent_stop(root: Path, repeats: int) -> None:
    print("controller stops a lying agent (local transport):")
    agent = root / "lying_agent.py"
    agent.write_text(textwrap.dedent(LYING_AGENT))
    transport = LocalTransport(Node(name="local", host="localhost", transport="local", python=sys.executable))

    async def once() -> None:
        try:
            async for _ in agent_events(transport, str(agent), "probe"):
                pass
        except NodeError:
            pass

    seconds = await median_async_s(repeats, once)
    line("bad line -> protocol error, agent stopped", f"{seconds:.2f} s", "the agent would sleep 60 s")


async def bench_sshd(root: Path, repeats: int) -> None:
    print("sshd nodes on loopback:")
    with SshdFleet(root / "fleet", 3) as fleet:
        settings = fleet.settings

        async def refused() -> None:
            try:
                await open_transport(fleet.nodes[0], settings).connect()
            except NodeError:
                pass

        fleet.kill(0)
        seconds = await median_async_s(repeats, refused)
        line(
            "killed sshd -> unreachable (refused)",
            f"{seconds * 1000:.0f} ms",
            f"connect timeout {settings.connect_timeout:g} s",
        )

        async def probe_with_dead_node() -> None:
            [r async for r in probe_fleet(fleet.nodes, settings, None)]

        seconds = await median_async_s(repeats, probe_with_dead_node)
        line(
            "probe of 3 nodes, one killed (wall)",
            f"{seconds:.2f} s",
            f"connect timeout {settings.connect_timeout:g} s",
        )
        fleet.restart(0)

        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            silent = replace(fleet.nodes[0], host="127.0.0.1", port=listener.getsockname()[1])
            short = replace(settings, connect_timeout=1.0)

            async def silent_server() -> None:
                try:
                    await open_transport(silent, short).connect()
                except NodeError:
                    pass

            seconds = await median_async_s(repeats, silent_server)
            line("silent server -> timeout (connect_timeout 1 s)", f"{seconds:.2f} s", "expect just over 1 s")

        transport = open_transport(fleet.nodes[1], settings)
        await transport.connect()
        try:

            async def terminate_sleep() -> None:
                proc = await transport.start(["sh", "-c", "echo ready; exec sleep 60"])
                await anext(proc.lines())
                proc.terminate()
                await proc.wait(30)

            seconds = await median_async_s(repeats, terminate_sleep)
            line("remote `sleep 60` terminate -> exit", f"{seconds:.2f} s")
        finally:
            await transport.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--no-sshd", action="store_true", help="skip the parts that need sshd nodes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-timings-") as tmp:
        root = Path(tmp)
        os.environ["HOME"] = str(root / "home")
        os.environ["XDG_CACHE_HOME"] = str(root / "home" / ".cache")
        os.environ.pop("SSH_AUTH_SOCK", None)
        (root / "home").mkdir()
        bench_readers(args.repeats)
        bench_engines(root / "artifacts", args.repeats)
        asyncio.run(bench_agent_stop(root, args.repeats))
        reason = sshd_missing_reason()
        if args.no_sshd or reason:
            print(f"sshd parts skipped: {reason or '--no-sshd'}")
        else:
            asyncio.run(bench_sshd(root, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
