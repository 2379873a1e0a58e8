"""`EnergyTrace`: the samples of one running reader, and the figures of windows of them.

The sweep keeps one reader running across the idle baseline and the cell, collects between
samples of the benchmark (never inside its timed region), and asks for windows afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from node_agent.energy.arithmetic import IdleBaseline, RunEnergy, idle_baseline, run_energy
from node_agent.energy.base import EnergyDelta, EnergyReader, PowerSample, ReaderError, ReaderInfo, Sample

MAX_TRACE_SAMPLES: Final = 400_000
"""An hour of IOReport deltas at 100 ms; the sweep forgets old samples between cells."""


class EnergyTrace:
    def __init__(self, reader: EnergyReader, initial: Sequence[Sample] = ()) -> None:
        self.reader = reader
        self.samples: list[Sample] = list(initial)

    def collect(self, timeout_s: float = 0.0) -> int:
        """Take what the reader has (waiting up to `timeout_s` for something); how many came.

        Raises the reader's `ReaderError` when it broke.
        """
        new = self.reader.poll(timeout_s)
        if len(self.samples) + len(new) > MAX_TRACE_SAMPLES:
            raise ReaderError(
                self.reader.name, f"trace over {MAX_TRACE_SAMPLES} samples (discard_before not called?)"
            )
        self.samples.extend(new)
        return len(new)

    def covered_until_ns(self) -> int | None:
        """The time up to which every stream of the trace has reported (None before any)."""
        if not self.samples:
            return None
        last: dict[str, int] = {}
        for sample in self.samples:
            key = (sample.channel or sample.rail) if isinstance(sample, EnergyDelta) else ""
            last[key] = max(last.get(key, sample.t_ns), sample.t_ns)
        return min(last.values())

    def coverage_timeout_s(self) -> float:
        """How long `wait_covered` may reasonably take: the next batch of a lumpy counter comes
        within about one publish cadence, a power reading within one interval (plus slack)."""
        info = self.reader.info()
        cadence_s = info.publish_cadence_ms / 1000 if info.kind == "counter" else 0.0
        return max(1.5 * cadence_s, 2 * info.interval_ms / 1000) + 1.0

    def wait_covered(self, end_ns: int, timeout_s: float) -> bool:
        """Collect until the trace reaches `end_ns` (a window must be covered to its end)."""
        deadline = time.monotonic() + timeout_s
        while True:
            covered = self.covered_until_ns()
            if covered is not None and covered >= end_ns:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.collect(min(remaining, 0.25))

    def discard_before(self, t_ns: int) -> None:
        """Forget what no window from `t_ns` on needs (bounded memory across cells).

        A power stream keeps its last reading before `t_ns`: its stamp starts the next interval.
        """
        power = [s for s in self.samples if isinstance(s, PowerSample)]
        keep_from = max((s.t_ns for s in power if s.t_ns <= t_ns), default=None)
        self.samples = [
            s
            for s in self.samples
            if (isinstance(s, PowerSample) and (keep_from is None or s.t_ns >= keep_from))
            or (isinstance(s, EnergyDelta) and s.t_ns > t_ns)
        ]

    def info(self) -> ReaderInfo:
        return self.reader.info()

    def idle(self, start_ns: int, end_ns: int) -> IdleBaseline:
        return idle_baseline(self.samples, start_ns, end_ns, self.info())

    def run(self, start_ns: int, end_ns: int, inferences: int, idle: IdleBaseline | None) -> RunEnergy:
        return run_energy(self.samples, start_ns, end_ns, inferences, self.info(), idle)
