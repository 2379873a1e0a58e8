"""mactop headless (sudoless from v0.2.5): ``mactop --headless --format json -i MS --count 0``.

With ``--count 0`` it prints one JSON object a line (``--count N > 0`` prints one JSON array
over many lines instead). Watts are in ``soc_metrics``: ``cpu_power gpu_power ane_power
dram_power gpu_sram_power system_power total_power``. ``-i`` is always passed, otherwise a
saved config decides the interval.

``system_power`` changed meaning in December 2025:

- before v0.2.7: ``system_power`` is the SMC whole-system reading (PSTR) and ``total_power``
  the sum of the SoC rails;
- v0.2.7 and later (all v2.x): ``total_power`` = max(PSTR, sum of rails) and
  ``system_power`` = ``total_power`` - sum, the rest of the system.

The meaning is taken from ``mactop --version`` and, when that is unknown, from each line's
own arithmetic (which of the two identities holds); which one was read is recorded.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from node_agent.energy.base import (
    IOREPORT_PUBLISH_CADENCE_MS,
    PowerSample,
    ReaderError,
    Sample,
    number,
    parse_version,
)
from node_agent.energy.child import ChildProcessReader, run_version
from node_agent.energy.macmon import load_json_line

SystemMeaning = Literal["whole_system", "residual"]
RESIDUAL_FROM: Final = (0, 2, 7)
SUDOLESS_FROM: Final = (0, 2, 5)
_RAILS: Final = {
    "cpu": "cpu_power",
    "gpu": "gpu_power",
    "ane": "ane_power",
    "dram": "dram_power",
    "gpu_sram": "gpu_sram_power",
}
REQUIRED_RAILS: Final = ("cpu", "gpu", "ane")
_TOLERANCE_W: Final = 1e-3


def system_meaning_for_version(version: tuple[int, int, int] | None) -> SystemMeaning | None:
    if version is None:
        return None
    return "residual" if version >= RESIDUAL_FROM else "whole_system"


def infer_system_meaning(rails: dict[str, float], system: float, total: float) -> SystemMeaning | None:
    """Which identity a line satisfies: total = sum + system (residual) or total = sum (whole_system).

    When system is 0 both hold; a whole machine drawing 0 W is impossible, so it is "residual".
    """
    rail_sum = sum(rails.values())
    tolerance = _TOLERANCE_W + 1e-6 * total
    if abs(total - (rail_sum + system)) <= tolerance:
        return "residual"
    if abs(total - rail_sum) <= tolerance:
        return "whole_system"
    return None


def parse_mactop_object(
    obj: Any, meaning: SystemMeaning | None, *, reader: str = "mactop", line_no: int = 0, line: str = ""
) -> tuple[dict[str, float], SystemMeaning | None]:
    """(watts per rail, the system meaning used) from one headless object.

    ``system`` is the whole machine: ``system_power`` under the old meaning, ``total_power``
    under the new one; absent when neither the version nor the line says which.
    """
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]  # a one-element array (``--count 1``) carries one sample
    if not isinstance(obj, dict) or not isinstance(obj.get("soc_metrics"), dict):
        raise ReaderError(reader, "expected an object with soc_metrics", line_no=line_no, line=line)
    soc = obj["soc_metrics"]
    watts: dict[str, float] = {}
    for rail, key in _RAILS.items():
        if key in soc:
            value = number(soc[key])
            if value is None:
                raise ReaderError(
                    reader, f"{key} is not a non-negative number: {soc[key]!r}", line_no=line_no, line=line
                )
            watts[rail] = value
    missing = [_RAILS[r] for r in REQUIRED_RAILS if r not in watts]
    if missing:
        raise ReaderError(
            reader, f"no soc_metrics.{', '.join(missing)} in the line", line_no=line_no, line=line
        )
    system, total = number(soc.get("system_power")), number(soc.get("total_power"))
    used = meaning
    if used is None and system is not None and total is not None:
        used = infer_system_meaning(watts, system, total)
    if used == "whole_system" and system:
        watts["system"] = system
    elif used == "residual" and total:
        watts["system"] = total
    return watts, used


def _line_meaning(obj: Any) -> SystemMeaning | None:
    """The meaning a line's own numbers imply, for the version cross-check (None if unclear)."""
    try:
        _, used = parse_mactop_object(obj, None)
    except ReaderError:
        return None
    return used


class MactopReader(ChildProcessReader):
    name = "mactop"
    executable_name = "mactop"
    publish_cadence_ms = IOREPORT_PUBLISH_CADENCE_MS

    def argv(self, executable: str) -> list[str]:
        return [executable, "--headless", "--format", "json", "-i", str(self.interval_ms), "--count", "0"]

    def _version_tuple(self) -> tuple[int, int, int] | None:
        return parse_version(self.version())

    def read_version(self) -> str | None:
        exe = self.executable()
        text = run_version([exe, "--version"]) if exe else None
        version = parse_version(text)
        return ".".join(map(str, version)) if version else text

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is not None:
            return reason
        version = self._version_tuple()
        if version is not None and version < SUDOLESS_FROM:
            shown = ".".join(map(str, version))
            return f"mactop {shown} needs sudo; headless without sudo needs v0.2.5 or later"
        return None

    def _start(self) -> None:
        meaning = system_meaning_for_version(self._version_tuple())
        self.note("system_power_meaning", meaning)
        self.note("system_meaning_source", "version" if meaning else None)
        super()._start()

    def parse_line(self, line: str, line_no: int, t_ns: int) -> list[Sample]:
        if not line.strip():
            return []
        obj = load_json_line(line, reader=self.name, line_no=line_no)
        known = system_meaning_for_version(self._version_tuple())
        watts, used = parse_mactop_object(obj, known, reader=self.name, line_no=line_no, line=line)
        if known is None and used is not None:
            self.note("system_power_meaning", used)
            self.note("system_meaning_source", "data")
        elif known is not None and "system_meaning_conflict" not in self.notes:
            seen = _line_meaning(obj)
            if seen is not None and seen != known:  # the version says one thing, the line another
                self.note("system_meaning_conflict", {"line": line_no, "line_says": seen})
        return [PowerSample(t_ns, watts, line_no, self.interval_ms * 1_000_000)]
