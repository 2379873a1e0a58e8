"""What a node is: hardware, OS, Python, libraries and current conditions (``agent probe``).

Stdlib only, no root. Every command runs as an argv list (no shell) with a short timeout, and
any failure becomes None. The parsers are pure functions over command output text, tested on
recorded macOS output (tests/fixtures/macos/); odd text gives None fields, never an exception.

macOS sources (TECH_BRIEF C): one ``sysctl`` call for the chip, model, cores, memory,
Rosetta, boot time, swap and memory pressure level; ``sw_vers``; ``memory_pressure`` for the
free percentage; ``system_profiler SPDisplaysDataType SPHardwareDataType -json`` (slow, so it
starts first and runs while the rest is read) for GPU cores; `node_agent.thermal` for thermal
pressure, Low Power Mode and power source. Linux sources: /proc and /sys files.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Final

from node_agent import thermal
from node_agent.capabilities import available_engines, library_versions
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

FACT_KEYS: Final = (
    "hostname", "os", "os_version", "os_build", "kernel", "chip", "hw_model", "cores_total", "cores_p",
    "cores_e", "gpu_cores", "memory_bytes", "rosetta", "thermal_pressure", "thermal_source",
    "low_power_mode", "power_source", "load_avg", "memory_pressure", "uptime_s", "swap_used_bytes",
    "python", "libs", "engines", "thermal_zones_c",
)  # fmt: skip
"""Keys always present in `collect_facts` (the shared interface); more may be added."""

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


def parse_int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


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
