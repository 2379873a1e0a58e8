"""Cost of the energy readers: `.venv/bin/python tests/bench/bench_energy.py`.

Not collected by pytest (tests/bench is in norecursedirs). Prints: parse cost per line /
block (what the agent pays per reading), window arithmetic over a 15-minute trace, and the
stop time of a reader process (FakeMacmon: SIGTERM honoured; and ignoring SIGTERM, so SIGKILL).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from node_agent.energy import EnergyDelta, PowerSample, counter_window_energy, power_window_energy
from node_agent.energy.macmon import MacmonReader, parse_macmon_line
from node_agent.energy.powermetrics import parse_powermetrics_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "energy"


def _time(label: str, fn: Callable[[], object], per: int = 1, repeats: int = 5) -> None:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - start) / per)
    print(f"{label:<52} median {statistics.median(timings) * 1e6:10.1f} us  (min {min(timings) * 1e6:.1f})")


def _stop_time(ignore_term: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "macmon"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIXTURES / "fake_macmon"}" "$@"\n')
        wrapper.chmod(0o755)
        os.environ["FAKE_MACMON_IGNORE_TERM"] = "1" if ignore_term else "0"
        reader = MacmonReader(100, executable=str(wrapper))
        reader.start()
        while not reader.poll(timeout_s=0.5):
            pass
        start = time.perf_counter()
        reader.stop()
        return time.perf_counter() - start


def main() -> None:
    line = (FIXTURES / "macmon_0.6_pipe_beszel_test.jsonl").read_text().strip()
    _time("parse one macmon line", lambda: [parse_macmon_line(line) for _ in range(1000)], per=1000)
    text = (FIXTURES / "powermetrics_macos13.6_m1max.txt").read_text()
    _time("parse one powermetrics block (with tasks)", lambda: parse_powermetrics_text(text), per=1)
    s = 1_000_000_000
    power = [
        PowerSample(k * s // 10, {"cpu": 2.0, "gpu": 1.0, "ane": 0.0, "system": 9.0}) for k in range(1, 9001)
    ]
    _time(
        "power window over 15 min at 100 ms (9000 readings)",
        lambda: power_window_energy(power, s, 890 * s, first_interval_ns=s // 10),
    )
    deltas = [EnergyDelta(k * s // 10, (k - 1) * s // 10, "gpu", 0.1, "GPU Energy") for k in range(1, 9001)]
    deltas += [
        EnergyDelta(k * 2 * s, (k - 1) * 2 * s, "cpu", 8.0, f"DIE_{d}_CPU Energy")
        for k in range(1, 451)
        for d in (0, 1)
    ]
    _time("counter window over 15 min (9900 deltas)", lambda: counter_window_energy(deltas, s, 890 * s))
    print(f"{'stop a reader that honours SIGTERM':<52} {_stop_time(False) * 1e3:10.1f} ms")
    print(f"{'stop a reader that ignores SIGTERM (SIGKILL after 2 s)':<52} {_stop_time(True) * 1e3:10.1f} ms")


if __name__ == "__main__":
    main()
