"""The macOS half of `node_agent.facts`: parsers over command output and `macos_facts`.

Imported only on macOS (and by tests, which pass recorded output), so a probe on Linux does
not compile it. Sources: one ``sysctl`` call for the chip, model, cores, memory, Rosetta, boot
time, swap and memory pressure level; ``sw_vers``; ``memory_pressure`` for the free percentage;
``system_profiler SPDisplaysDataType SPHardwareDataType -json`` (slow, so it starts first and
runs while the rest is read) for GPU cores. Every parser is a pure function over command output
text; odd text gives None fields, never an exception.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any, Final

from node_agent.textparse import parse_int
from node_agent.thermal import RunCommand, run_command

SYSTEM_PROFILER_TIMEOUT_S: Final = 15.0
MEMORY_PRESSURE_LEVELS: Final = {1: "normal", 2: "warn", 4: "critical"}
"""kern.memorystatus_vm_pressure_level (DISPATCH_MEMORYPRESSURE_*; third-party reading)."""

SYSCTL_KEYS: Final = (
    "machdep.cpu.brand_string",
    "hw.model",
    "hw.ncpu",
    "hw.memsize",
    "hw.perflevel0.physicalcpu",
    "hw.perflevel1.physicalcpu",
    "hw.nperflevels",
    "sysctl.proc_translated",
    "kern.boottime",
    "vm.swapusage",
    "kern.memorystatus_vm_pressure_level",
)

_SIZE_UNITS: Final = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


# --- parsers (pure) -------------------------------------------------------------------------


def parse_sysctl_lines(text: str | None) -> dict[str, str]:
    """``sysctl name ...`` output ("name: value" per line) as a dict of raw strings."""
    values: dict[str, str] = {}
    for line in (text or "").splitlines():
        name, sep, value = line.partition(":")
        if sep and name and " " not in name.strip():
            values[name.strip()] = value.strip()
    return values


def parse_sw_vers(text: str | None) -> dict[str, str | None]:
    """``sw_vers``: ProductName / ProductVersion / BuildVersion (tab separated)."""
    found = parse_sysctl_lines(text)
    return {
        "product_name": found.get("ProductName") or None,
        "product_version": found.get("ProductVersion") or None,
        "build_version": found.get("BuildVersion") or None,
    }


def _system_profiler_section(text: str | None, data_type: str) -> list[Any]:
    try:
        document = json.loads(text or "")
    except (ValueError, TypeError):
        return []
    section = document.get(data_type) if isinstance(document, dict) else None
    return section if isinstance(section, list) else []


def parse_gpu_cores(text: str | None) -> int | None:
    """GPU cores from ``system_profiler SPDisplaysDataType -json`` (``sppci_cores`` is a string)."""
    for item in _system_profiler_section(text, "SPDisplaysDataType"):
        if isinstance(item, dict):
            cores = parse_int(str(item.get("sppci_cores", "")))
            if cores is not None:
                return cores
    return None


def parse_hardware_overview(text: str | None) -> dict[str, Any]:
    """``system_profiler SPHardwareDataType -json``: chip, model, cores (total:P:E), memory."""
    result: dict[str, Any] = {
        "chip": None,
        "hw_model": None,
        "cores_total": None,
        "cores_p": None,
        "cores_e": None,
        "memory_bytes": None,
    }
    section = _system_profiler_section(text, "SPHardwareDataType")
    item = section[0] if section and isinstance(section[0], dict) else {}
    result["chip"] = item.get("chip_type") if isinstance(item.get("chip_type"), str) else None
    result["hw_model"] = item.get("machine_model") if isinstance(item.get("machine_model"), str) else None
    procs = re.fullmatch(r"proc (\d+):(\d+):(\d+)", str(item.get("number_processors", "")))
    if procs:
        result["cores_total"], result["cores_p"], result["cores_e"] = (int(g) for g in procs.groups())
    memory = re.fullmatch(r"(\d+(?:\.\d+)?) ?([KMGT])B", str(item.get("physical_memory", "")))
    if memory:
        result["memory_bytes"] = int(float(memory.group(1)) * _SIZE_UNITS[memory.group(2)])
    return result


def parse_memory_pressure_free(text: str | None) -> int | None:
    """``memory_pressure``: the "System-wide memory free percentage: N%" line."""
    match = re.search(r"System-wide memory free percentage:\s*(\d+)%", text or "")
    return int(match.group(1)) if match else None


def parse_memory_pressure_level(text: str | None) -> str | None:
    """``sysctl -n kern.memorystatus_vm_pressure_level``: 1/2/4 -> normal/warn/critical."""
    level = parse_int(text)
    return MEMORY_PRESSURE_LEVELS.get(level) if level is not None else None


def parse_vm_stat(text: str | None) -> dict[str, Any]:
    """``vm_stat``: page size and the "Pages xxx: N." counters (keys lower-cased, spaces as _)."""
    lines = (text or "").splitlines()
    size = re.search(r"page size of (\d+) bytes", lines[0]) if lines else None
    pages: dict[str, int] = {}
    for line in lines[1:]:
        match = re.match(r'^"?([^":]+)"?:\s+(\d+)\.?\s*$', line)
        if match:
            pages[match.group(1).strip().lower().replace(" ", "_").replace("-", "_")] = int(match.group(2))
    return {"page_size": int(size.group(1)) if size else None, "pages": pages}


def _size_to_bytes(number: str, unit: str) -> int:
    return int(float(number) * _SIZE_UNITS[unit.upper()])


def parse_swapusage(text: str | None) -> dict[str, int | None]:
    """``sysctl vm.swapusage``: total / used / free in bytes (values like ``5120.00M``)."""
    result: dict[str, int | None] = {"total": None, "used": None, "free": None}
    for key in result:
        match = re.search(rf"\b{key}\s*=\s*(\d+(?:\.\d+)?)([KMGT]?)", text or "", re.IGNORECASE)
        if match:
            result[key] = _size_to_bytes(match.group(1), match.group(2))
    return result


def parse_boottime(text: str | None) -> float | None:
    """``sysctl -n kern.boottime`` (``{ sec = S, usec = U } <date>``) as epoch seconds."""
    match = re.search(r"sec\s*=\s*(\d+)(?:,\s*usec\s*=\s*(\d+))?", text or "")
    if not match:
        return None
    return int(match.group(1)) + int(match.group(2) or 0) / 1e6


def parse_loadavg(text: str | None) -> list[float] | None:
    """``sysctl -n vm.loadavg`` (``{ 1.98 2.08 2.21 }``) as three floats."""
    numbers = re.findall(r"\d+(?:[.,]\d+)?", text or "")
    if len(numbers) < 3:
        return None
    return [float(n.replace(",", ".")) for n in numbers[:3]]


def _mac_ver() -> str:
    import platform

    return platform.mac_ver()[0]


def _start(argv: list[str]) -> subprocess.Popen[str] | None:
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
    except (OSError, ValueError):
        return None


def _finish(proc: subprocess.Popen[str] | None, timeout: float) -> str | None:
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except (subprocess.SubprocessError, OSError, ValueError):
        proc.kill()
        proc.wait()
        return None
    return out if proc.returncode == 0 else None


PROFILER_ARGV: Final = ("system_profiler", "SPDisplaysDataType", "SPHardwareDataType", "-json")


def macos_facts(run: RunCommand | None = None) -> dict[str, Any]:
    """Facts on macOS (the platform keys of `collect_facts`).

    ``run`` replaces the real commands (tests pass recorded output); by default they run for
    real, with system_profiler started first so its second or more overlaps the rest.
    """
    real = run is None
    profiler = _start(list(PROFILER_ARGV)) if real else None
    if run is None:
        run = run_command
        sysctl_text = run_command(["sysctl", *SYSCTL_KEYS], any_status=True)
    else:
        sysctl_text = run(["sysctl", *SYSCTL_KEYS])
    sysctl = parse_sysctl_lines(sysctl_text)
    for key in ("machdep.cpu.brand_string", "hw.memsize", "hw.model", "hw.ncpu"):
        if key not in sysctl:  # a multi-name call may have stopped early; ask singly as the brief does
            value = run(["sysctl", "-n", key])
            if value is not None and value.strip():
                sysctl[key] = value.strip()
    versions = parse_sw_vers(run(["sw_vers"]))
    boot = parse_boottime(sysctl.get("kern.boottime"))
    translated = parse_int(sysctl.get("sysctl.proc_translated"))
    facts: dict[str, Any] = {
        "os": "macos",
        "os_version": versions["product_version"] or (_mac_ver() or None),
        "os_build": versions["build_version"],
        "chip": sysctl.get("machdep.cpu.brand_string") or None,
        "hw_model": sysctl.get("hw.model") or None,
        "cores_total": parse_int(sysctl.get("hw.ncpu")) or os.cpu_count(),
        "cores_p": parse_int(sysctl.get("hw.perflevel0.physicalcpu")),
        "cores_e": parse_int(sysctl.get("hw.perflevel1.physicalcpu")),
        "memory_bytes": parse_int(sysctl.get("hw.memsize")),
        "rosetta": None if translated is None else translated == 1,
        "memory_pressure": parse_memory_pressure_level(sysctl.get("kern.memorystatus_vm_pressure_level")),
        "memory_free_percent": parse_memory_pressure_free(run(["memory_pressure"])),
        "uptime_s": round(time.time() - boot, 1) if boot is not None else None,
        "swap_used_bytes": parse_swapusage(sysctl.get("vm.swapusage"))["used"],
        "thermal_zones_c": None,
    }
    profile_text = _finish(profiler, SYSTEM_PROFILER_TIMEOUT_S) if real else run(PROFILER_ARGV)
    facts["gpu_cores"] = parse_gpu_cores(profile_text)
    overview = parse_hardware_overview(profile_text)
    for key in ("chip", "hw_model", "cores_total", "cores_p", "cores_e", "memory_bytes"):
        if facts[key] is None:
            facts[key] = overview[key]
    return facts
