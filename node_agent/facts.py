"""What a node is: hardware, OS, Python, libraries and current conditions (``agent probe``).

Stdlib only, no root. Every command runs as an argv list (no shell) with a short timeout, and
any failure becomes None. The parsers are pure functions over command output text; odd text
gives None fields, never an exception.

Linux sources: /proc and /sys files, here. macOS sources (sysctl, sw_vers, memory_pressure,
system_profiler) and their parsers live in `node_agent.facts_macos`, imported only on macOS (a
probe runs on every fleet refresh and compiles what it imports); that module never imports this
one, so the dependency runs one way. `node_agent.thermal` gives thermal pressure, Low Power Mode
and power source.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import time
from typing import Any, Final

from node_agent import thermal
from node_agent.capabilities import available_engines, library_versions
from node_agent.textparse import parse_int

FACT_KEYS: Final = (
    "hostname", "os", "os_version", "os_build", "kernel", "chip", "hw_model", "cores_total", "cores_p",
    "cores_e", "gpu_cores", "memory_bytes", "rosetta", "thermal_pressure", "thermal_source",
    "low_power_mode", "power_source", "load_avg", "memory_pressure", "uptime_s", "swap_used_bytes",
    "python", "libs", "engines", "thermal_zones_c",
)  # fmt: skip
"""Keys always present in `collect_facts` (the shared interface); more may be added."""


# --- parsers (pure) -------------------------------------------------------------------------


def parse_cpuinfo_model(text: str | None) -> str | None:
    """Linux /proc/cpuinfo: the first "model name" (x86), else "Hardware" / "Model" (ARM boards)."""
    fields: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    for key in ("model name", "Hardware", "Model"):
        if fields.get(key):
            return fields[key]
    return None


def parse_meminfo(text: str | None) -> dict[str, int]:
    """Linux /proc/meminfo in bytes (the "kB" values times 1024)."""
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        match = re.match(r"^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?\s*$", line)
        if match:
            values[match.group(1)] = int(match.group(2)) * (1024 if line.rstrip().endswith("kB") else 1)
    return values


def parse_os_release(text: str | None) -> str | None:
    """PRETTY_NAME from /etc/os-release."""
    for line in (text or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"').strip("'") or None
    return None


def parse_proc_uptime(text: str | None) -> float | None:
    parts = (text or "").split()
    try:
        return float(parts[0]) if parts else None
    except ValueError:
        return None


# --- collectors -----------------------------------------------------------------------------


def _read_file(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _uname() -> tuple[str, str, str]:
    """(hostname, kernel release, machine) from os.uname(), the fields socket.gethostname() and
    platform.release() / machine() return, without importing those modules (they cost ms)."""
    try:
        uname = os.uname()
    except (AttributeError, OSError):  # no uname on this platform
        import platform

        return platform.node(), platform.release(), platform.machine()
    return uname.nodename, uname.release, uname.machine


def _common_facts() -> dict[str, Any]:
    conditions = thermal.read_conditions()
    hostname, kernel, machine = _uname()
    libs = library_versions()
    return {
        "hostname": hostname,
        "kernel": kernel or None,
        "machine": machine or None,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "libs": libs,
        "engines": available_engines(libs),
        "load_avg": conditions["load_avg"],
        "thermal_pressure": conditions["thermal_pressure"],
        "thermal_source": conditions["thermal_source"],
        "low_power_mode": conditions["low_power_mode"],
        "power_mode_raw": conditions["power_mode_raw"],
        "power_source": conditions["power_source"],
        "battery_percent": conditions["battery_percent"],
        "top_cpu": conditions["top_cpu"],
    }


def _processor() -> str:
    import platform  # a fallback only: importing it costs a few ms on every probe

    return platform.processor()


def linux_thermal_zones() -> dict[str, float] | None:
    """/sys/class/thermal zones in degrees C, keyed by type (zone name when types repeat)."""
    zones: dict[str, float] = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        millideg = parse_int(_read_file(os.path.join(zone, "temp")))
        if millideg is None:
            continue
        kind = (_read_file(os.path.join(zone, "type")) or "").strip() or os.path.basename(zone)
        key = kind if kind not in zones else f"{kind}:{os.path.basename(zone)}"
        zones[key] = millideg / 1000.0
    return zones or None


def linux_facts() -> dict[str, Any]:
    """Facts on Linux (the keys of `collect_facts`; macOS-only ones are None)."""
    meminfo = parse_meminfo(_read_file("/proc/meminfo"))
    total, available = meminfo.get("MemTotal"), meminfo.get("MemAvailable")
    swap_total, swap_free = meminfo.get("SwapTotal"), meminfo.get("SwapFree")
    try:
        cores_available: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores_available = None
    product = (_read_file("/sys/devices/virtual/dmi/id/product_name") or "").strip()
    return {
        "os": "linux",
        "os_version": parse_os_release(_read_file("/etc/os-release")),
        "os_build": None,
        "chip": parse_cpuinfo_model(_read_file("/proc/cpuinfo")) or _processor() or None,
        "hw_model": product or None,
        "cores_total": os.cpu_count(),
        "cores_available": cores_available,
        "cores_p": None,
        "cores_e": None,
        "gpu_cores": None,
        "memory_bytes": total,
        "rosetta": None,
        "memory_pressure": None,
        "memory_free_percent": round(100 * available / total) if total and available is not None else None,
        "uptime_s": parse_proc_uptime(_read_file("/proc/uptime")),
        "swap_used_bytes": swap_total - swap_free
        if swap_total is not None and swap_free is not None
        else None,
        "thermal_zones_c": linux_thermal_zones(),
    }


def collect_facts() -> dict[str, Any]:
    """Everything the controller records about a node (None where unknown). See the module doc."""
    started = time.perf_counter()
    if sys.platform == "darwin":
        from node_agent.facts_macos import macos_facts

        facts = macos_facts()
    elif sys.platform.startswith("linux"):
        facts = linux_facts()
    else:
        facts = {"os": sys.platform, "chip": _processor() or None, "cores_total": os.cpu_count()}
    facts.update(_common_facts())
    for key in FACT_KEYS:
        facts.setdefault(key, None)
    facts["collect_seconds"] = round(time.perf_counter() - started, 3)
    return facts
