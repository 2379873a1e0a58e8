"""powermetrics, only when the agent already runs as root (it never asks for a password).

``powermetrics --samplers cpu_power,gpu_power -i MS`` prints text blocks, each opened by
``*** Sampled system activity (<date>) (<N>ms elapsed) ***`` and carrying ``<Name> Power: N mW``
lines. Formats seen:

- macOS 12 (Monterey): ``ANE Power``, ``DRAM Power``, ``CPU Power``, ``GPU Power`` and
  ``Package Power`` (and per-cluster ``E-Cluster Power`` lines, not rails);
- macOS 13 and later: ``CPU Power``, ``GPU Power``, ``ANE Power``,
  ``Combined Power (CPU + GPU + ANE)``;
- the ``gpu_power`` sampler prints its own ``GPU Power`` line, so it can appear twice in a
  block: the first one counts, a second one with another value is noted.

A block is stamped when its header arrives (the header follows the end of its interval) and
emitted when the next header, or the end of the output, closes it. Its ``elapsed`` time is
its interval.
"""

from __future__ import annotations

import os
import re
from typing import Final

from node_agent.energy.base import PowerSample, ReaderError, Sample
from node_agent.energy.child import ChildProcessReader
from node_agent.thermal import run_command

_HEADER: Final = re.compile(r"^\*\*\* Sampled system activity \((.*)\) \(([\d.]+)\s*ms elapsed\) \*\*\*\s*$")
_RAIL_LINE: Final = re.compile(r"^\s*(?P<name>CPU|GPU|ANE|DRAM|Package|Combined) Power\b")
_POWER_VALUE: Final = re.compile(r"^[^:]*:\s*(?P<value>[-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*(?P<unit>mW|W)\s*$")
_RAIL_OF: Final = {
    "CPU": "cpu",
    "GPU": "gpu",
    "ANE": "ane",
    "DRAM": "dram",
    "Package": "package",
    "Combined": "combined",
}
_UNITS_PER_W: Final = {"mW": 1000.0, "W": 1.0}


class PowermetricsBlock:
    """The block being read: its stamp, interval and watts so far."""

    def __init__(self, t_ns: int, interval_ns: int | None, line_no: int) -> None:
        self.t_ns = t_ns
        self.interval_ns = interval_ns
        self.line_no = line_no
        self.watts: dict[str, float] = {}
        self.duplicates: dict[str, float] = {}

    def sample(self, reader: str, required: tuple[str, ...]) -> PowerSample:
        missing = [r for r in required if r not in self.watts]
        if missing:
            raise ReaderError(reader, f"a sample without {'/'.join(missing)} power", line_no=self.line_no)
        return PowerSample(self.t_ns, dict(self.watts), self.line_no, self.interval_ns)


class PowermetricsParser:
    """Turns powermetrics text, line by line, into `PowerSample`s (one per closed block)."""

    def __init__(self, reader: str = "powermetrics", *, required: tuple[str, ...] = ()) -> None:
        self.reader = reader
        self.required = required
        self.block: PowermetricsBlock | None = None
        self.duplicate_values: list[tuple[int, str, float, float]] = []

    def feed(self, line: str, line_no: int, t_ns: int) -> list[PowerSample]:
        header = _HEADER.match(line)
        if header is not None:
            done = self.finish()
            elapsed_ms = float(header.group(2))
            self.block = PowermetricsBlock(t_ns, int(elapsed_ms * 1_000_000), line_no)
            return done
        rail_match = _RAIL_LINE.match(line)
        if rail_match is None:
            return []  # other lines, and E-Cluster / P0-Cluster / DCS Power: parts, not rails
        name = rail_match.group("name")
        rail = _RAIL_OF[name]
        if self.block is None:
            raise ReaderError(
                self.reader, f"{name} Power before any sample header", line_no=line_no, line=line
            )
        match = _POWER_VALUE.match(line)
        if match is None:
            raise ReaderError(self.reader, f"cannot read {name} Power", line_no=line_no, line=line)
        try:
            value = float(match.group("value")) / _UNITS_PER_W[match.group("unit")]
        except ValueError:
            raise ReaderError(self.reader, f"cannot read {name} Power", line_no=line_no, line=line) from None
        if value < 0:
            raise ReaderError(self.reader, f"negative {name} Power", line_no=line_no, line=line)
        if rail in self.block.watts:
            if value != self.block.watts[rail]:
                self.duplicate_values.append((line_no, rail, self.block.watts[rail], value))
            return []
        self.block.watts[rail] = value
        return []

    def finish(self) -> list[PowerSample]:
        block, self.block = self.block, None
        if block is None or not block.watts:
            return []  # a block of other samplers only (tasks) carries no power
        return [block.sample(self.reader, self.required)]


def parse_powermetrics_text(
    text: str, *, t0_ns: int = 0, step_ns: int = 1, required: tuple[str, ...] = ()
) -> list[PowerSample]:
    """All samples of a powermetrics text (tests and selftest); lines stamped t0 + i*step."""
    parser = PowermetricsParser(required=required)
    samples: list[PowerSample] = []
    for index, line in enumerate(text.splitlines()):
        samples += parser.feed(line, index + 1, t0_ns + index * step_ns)
    return samples + parser.finish()


class PowermetricsReader(ChildProcessReader):
    name = "powermetrics"
    executable_name = "powermetrics"
    max_lines_per_interval = 2000  # three lines per CPU core and per cluster, and then some

    def __init__(self, interval_ms: int, *, executable: str | None = None, euid: int | None = None) -> None:
        super().__init__(interval_ms, executable=executable)
        self._euid = euid
        # Both samplers are asked for, so a block without CPU or GPU power is a broken block.
        self._parser = PowermetricsParser(self.name, required=("cpu", "gpu"))

    def unavailable_reason(self) -> str | None:
        euid = os.geteuid() if self._euid is None else self._euid
        if euid != 0:
            return "powermetrics needs root and the agent does not run as root (it never asks for a password)"
        return super().unavailable_reason()

    def argv(self, executable: str) -> list[str]:
        return [executable, "--samplers", "cpu_power,gpu_power", "-i", str(self.interval_ms)]

    def read_version(self) -> str | None:
        """powermetrics has no version flag; the OS build it ships with identifies it."""
        build = run_command(["sw_vers", "-buildVersion"])
        return f"macOS build {build.strip()}" if build and build.strip() else None

    def parse_line(self, line: str, line_no: int, t_ns: int) -> list[Sample]:
        samples: list[Sample] = list(self._parser.feed(line, line_no, t_ns))
        if self._parser.duplicate_values:
            self.note("duplicate_values", self._parser.duplicate_values[-5:])
        return samples

    def finish(self, line_no: int, t_ns: int) -> list[Sample]:
        return list(self._parser.finish())
