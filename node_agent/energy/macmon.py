"""macmon (sudoless, IOReport "Energy Model" + SMC): ``macmon pipe -i MS``, one JSON object a line.

Each line is the average over the interval that ends when it is printed, in watts:
``cpu_power gpu_power ane_power all_power sys_power ram_power gpu_ram_power``. Two schemas:

- <= 0.6: those keys at top level, with ``ecpu_usage`` / ``pcpu_usage`` / ``gpu_usage`` pairs;
- >= 0.7: new usage fields (``cpu_usage_pct``, later ``*_freq_mhz`` / ``*_ratio``); 0.8.0
  renamed metrics and 0.8.1 restored the 0.7 names as aliases. The power keys above are read
  at top level first and, failing that, from a nested ``power`` object (``cpu``, ``gpu``,
  ``ane``, ``ram``, ``gpu_ram``, ``sys`` / ``board``), so either spelling parses.

``sys_power`` is the SMC whole-machine reading; macmon prints 0 where the machine has no such
sensor, so a zero there means "no system figure", not zero watts.
"""

from __future__ import annotations

import json
from typing import Any, Final

from node_agent.energy.base import (
    IOREPORT_PUBLISH_CADENCE_MS,
    PowerSample,
    ReaderError,
    Sample,
    number,
    parse_version,
)
from node_agent.energy.child import ChildProcessReader, run_version

MIN_INTERVAL_MS: Final = 100
"""macmon clamps its interval to at least 100 ms."""
_TOP_LEVEL: Final = {
    "cpu": "cpu_power",
    "gpu": "gpu_power",
    "ane": "ane_power",
    "dram": "ram_power",
    "gpu_sram": "gpu_ram_power",
    "system": "sys_power",
}
_NESTED: Final = {
    "cpu": ("cpu",),
    "gpu": ("gpu",),
    "ane": ("ane",),
    "dram": ("ram", "dram"),
    "gpu_sram": ("gpu_ram", "gpu_sram"),
    "system": ("sys", "board", "system"),
}
REQUIRED_RAILS: Final = ("cpu", "gpu", "ane")


def macmon_schema(obj: dict[str, Any]) -> str:
    """ "<=0.6" or ">=0.7", from the usage fields (the power keys are the same in both)."""
    if "ecpu_usage" in obj or "pcpu_usage" in obj:
        return "<=0.6"
    return ">=0.7"


def parse_macmon_object(
    obj: Any, *, reader: str = "macmon", line_no: int = 0, line: str = ""
) -> dict[str, float]:
    """Watts per rail from one macmon JSON object; `ReaderError` if a needed rail is absent or bad."""
    if not isinstance(obj, dict):
        raise ReaderError(
            reader, f"expected a JSON object, got {type(obj).__name__}", line_no=line_no, line=line
        )
    power = obj.get("power")
    nested: dict[str, Any] = power if isinstance(power, dict) else {}
    watts: dict[str, float] = {}
    for rail, key in _TOP_LEVEL.items():
        raw: Any = obj.get(key)
        if raw is None:
            raw = next((nested[k] for k in _NESTED[rail] if k in nested), None)
        if raw is None:
            continue
        value = number(raw)
        if value is None:
            raise ReaderError(
                reader, f"{key} is not a non-negative number: {raw!r}", line_no=line_no, line=line
            )
        watts[rail] = value
    missing = [_TOP_LEVEL[r] for r in REQUIRED_RAILS if r not in watts]
    if missing:
        raise ReaderError(reader, f"no {', '.join(missing)} in the line", line_no=line_no, line=line)
    if watts.get("system") == 0.0:
        del watts["system"]  # no SMC system sensor on this machine
    return watts


def load_json_line(line: str, *, reader: str, line_no: int) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise ReaderError(reader, f"not JSON ({exc})", line_no=line_no, line=line) from None


def parse_macmon_line(line: str, *, line_no: int = 0, reader: str = "macmon") -> dict[str, float]:
    obj = load_json_line(line, reader=reader, line_no=line_no)
    return parse_macmon_object(obj, reader=reader, line_no=line_no, line=line)


class MacmonReader(ChildProcessReader):
    name = "macmon"
    executable_name = "macmon"
    publish_cadence_ms = IOREPORT_PUBLISH_CADENCE_MS

    def __init__(self, interval_ms: int, *, executable: str | None = None) -> None:
        super().__init__(max(interval_ms, MIN_INTERVAL_MS), executable=executable)

    def argv(self, executable: str) -> list[str]:
        return [executable, "pipe", "-i", str(self.interval_ms)]

    def read_version(self) -> str | None:
        exe = self.executable()
        text = run_version([exe, "--version"]) if exe else None
        version = parse_version(text)
        return ".".join(map(str, version)) if version else text

    def parse_line(self, line: str, line_no: int, t_ns: int) -> list[Sample]:
        if not line.strip():
            return []
        obj = load_json_line(line, reader=self.name, line_no=line_no)
        watts = parse_macmon_object(obj, reader=self.name, line_no=line_no, line=line)
        self.note("schema", macmon_schema(obj), overwrite=False)
        return [PowerSample(t_ns, watts, line_no, self.interval_ms * 1_000_000)]
