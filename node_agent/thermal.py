"""Run conditions: thermal pressure, Low Power Mode, power source, load and the top CPU process.

macOS cannot be tuned for benchmarking, so the agent records the conditions instead
(docs/MEASUREMENT.md, "Stopping"): before and after each bucket and every few seconds during
sustained runs. `read_conditions` is therefore cheap: one notify call (no process) plus
``pmset -g``, ``pmset -g batt`` and ``ps`` on macOS; file reads plus ``ps`` on Linux.

Thermal pressure sources, in order (docs/PLATFORM.md, "macOS readers", none needs root):

1. the Darwin notify key ``com.apple.system.thermalpressurelevel`` via ctypes against
   libSystem: 0..4 = nominal / moderate / heavy / trapping / sleeping (source ``"notify"``);
2. ``NSProcessInfo.processInfo.thermalState`` via the Objective-C runtime: 0..3 = nominal /
   fair / serious / critical (source ``"nsprocessinfo"``; coarser, and its own vocabulary);
3. ``pmset -g therm``: ``CPU_Speed_Limit`` < 100 is ``"throttled"``, = 100 ``"nominal"``
   (source ``"pmset"``; Intel Macs print it, Apple silicon only prints "Note:" lines).

Stdlib only. Every parser takes command output text and returns None fields for text it does
not understand; nothing here raises on odd input. The macOS-only readers take injectable
stand-ins (tests pass ``Fake...`` objects) and default to the real ones.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

THERMAL_PRESSURE_LEVELS: Final = ("nominal", "moderate", "heavy", "trapping", "sleeping")
"""OSThermalPressureLevel 0..4 (Libc OSThermalNotification.h)."""
NS_THERMAL_STATES: Final = ("nominal", "fair", "serious", "critical")
"""NSProcessInfoThermalState 0..3."""
THERMAL_NOTIFY_KEY: Final = b"com.apple.system.thermalpressurelevel"
LIBSYSTEM_PATH: Final = "/usr/lib/libSystem.B.dylib"
LIBOBJC_PATH: Final = "/usr/lib/libobjc.A.dylib"
FOUNDATION_PATH: Final = "/System/Library/Frameworks/Foundation.framework/Foundation"
COMMAND_TIMEOUT_S: Final = 3.0

RunCommand = Callable[[Sequence[str]], "str | None"]


def run_command(
    argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_S, *, any_status: bool = False
) -> str | None:
    """stdout of a command (argv list, no shell), or None if it is missing, fails or times out.

    With ``any_status`` the output is returned even on a non-zero exit (``sysctl`` with several
    names prints the known ones and fails for the rest).
    """
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0 and not any_status:
        return None
    return done.stdout


# --- parsers (pure) -------------------------------------------------------------------------


def parse_pmset_therm(text: str | None) -> dict[str, Any]:
    """``pmset -g therm``: the CPU_* limits (Intel) and the "Note:" lines (quiet Apple silicon)."""
    result: dict[str, Any] = {
        "cpu_speed_limit": None,
        "cpu_scheduler_limit": None,
        "cpu_available_cpus": None,
        "notes": [],
    }
    for line in (text or "").splitlines():
        match = re.match(
            r"^\s*(CPU_Speed_Limit|CPU_Scheduler_Limit|CPU_Available_CPUs)\s*=\s*(\d+)\s*$", line
        )
        if match:
            result[match.group(1).lower()] = int(match.group(2))
        elif line.strip().startswith("Note:"):
            result["notes"].append(line.strip()[len("Note:") :].strip())
    return result


def pmset_therm_level(text: str | None) -> str | None:
    """ "throttled" when CPU_Speed_Limit < 100, "nominal" at 100, None when absent (Apple silicon)."""
    limit = parse_pmset_therm(text)["cpu_speed_limit"]
    if limit is None:
        return None
    return "throttled" if limit < 100 else "nominal"


def parse_pmset_settings(text: str | None) -> dict[str, int]:
    """``pmset -g``: the numeric ``lowpowermode`` and ``powermode`` settings that are present, raw."""
    found: dict[str, int] = {}
    for line in (text or "").splitlines():
        match = re.match(r"^\s*(lowpowermode|powermode)\s+(\d+)\s*$", line)
        if match:
            found[match.group(1)] = int(match.group(2))
    return found


def low_power_from_settings(settings: dict[str, int]) -> bool | None:
    """Low Power Mode from `parse_pmset_settings`: lowpowermode 1, or powermode 1 (0 auto, 2 high).

    The powermode reading is third-party (UNVERIFIED), so the raw values are recorded beside it.
    """
    if "lowpowermode" in settings:
        return settings["lowpowermode"] == 1
    if "powermode" in settings:
        return settings["powermode"] == 1
    return None


def parse_pmset_batt(text: str | None) -> dict[str, Any]:
    """``pmset -g batt``: power source ("ac" | "battery" | None), battery percent and state."""
    result: dict[str, Any] = {"power_source": None, "battery_percent": None, "battery_state": None}
    lines = (text or "").splitlines()
    if lines:
        match = re.search(r"Now drawing from '([^']+)'", lines[0])
        if match:
            result["power_source"] = {"AC Power": "ac", "Battery Power": "battery"}.get(match.group(1))
    for line in lines[1:]:
        match = re.search(r"InternalBattery[^\t]*\t\s*(\d+)%;\s*([^;]+);", line)
        if match:
            result["battery_percent"] = int(match.group(1))
            result["battery_state"] = match.group(2).strip()
            break
    return result


def parse_ps_top(text: str | None, exclude_pids: Sequence[int] = ()) -> dict[str, Any] | None:
    """First process of ``ps`` output sorted by CPU (columns pid, pcpu, comm), skipping some pids."""
    for line in (text or "").splitlines()[1:]:  # line 0 is the header
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        try:
            pid, cpu = int(parts[0]), float(parts[1].replace(",", "."))  # some locales print 1,5
        except ValueError:
            continue
        if pid in exclude_pids:
            continue
        return {"pid": pid, "command": parts[2].strip(), "cpu_percent": cpu}
    return None


# --- macOS readers (ctypes; injectable for tests) ---------------------------------------------


class LibSystemLike(Protocol):
    """The three notify(3) functions of libSystem that the thermal reader calls."""

    def notify_register_check(self, name: bytes, token: Any, /) -> int: ...
    def notify_get_state(self, token: Any, state: Any, /) -> int: ...
    def notify_cancel(self, token: Any, /) -> int: ...


class ProcessInfoLike(Protocol):
    """NSProcessInfo.processInfo's thermal state and Low Power Mode (None when unreadable)."""

    def thermal_state(self) -> int | None: ...
    def low_power_mode_enabled(self) -> bool | None: ...


_libsystem_cache: list[Any] = []


def load_libsystem() -> Any | None:
    """libSystem with the notify signatures (docs/PLATFORM.md, "macOS readers"), or None off macOS."""
    if not _libsystem_cache:
        try:
            lib = ctypes.CDLL(LIBSYSTEM_PATH)
            lib.notify_register_check.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
            lib.notify_register_check.restype = ctypes.c_uint32
            lib.notify_get_state.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint64)]
            lib.notify_get_state.restype = ctypes.c_uint32
            lib.notify_cancel.argtypes = [ctypes.c_int]
            lib.notify_cancel.restype = ctypes.c_uint32
        except (OSError, AttributeError):
            lib = None
        _libsystem_cache.append(lib)
    return _libsystem_cache[0]


def read_notify_thermal_level(libsystem: LibSystemLike) -> int | None:
    """The raw OSThermalPressureLevel from the notify key, or None if a call fails."""
    token, state = ctypes.c_int(0), ctypes.c_uint64(0)
    try:
        if libsystem.notify_register_check(THERMAL_NOTIFY_KEY, ctypes.byref(token)) != 0:
            return None
        try:
            if libsystem.notify_get_state(token, ctypes.byref(state)) != 0:
                return None
            return int(state.value)
        finally:
            libsystem.notify_cancel(token)
    except (OSError, AttributeError, ctypes.ArgumentError, TypeError):
        return None


class ObjcProcessInfo:
    """NSProcessInfo through the Objective-C runtime with typed objc_msgSend prototypes (no pyobjc)."""

    def __init__(self) -> None:
        objc = ctypes.CDLL(LIBOBJC_PATH)
        ctypes.CDLL(FOUNDATION_PATH)  # registers the NSProcessInfo class
        objc.objc_getClass.argtypes = [ctypes.c_char_p]
        objc.objc_getClass.restype = ctypes.c_void_p
        objc.sel_registerName.argtypes = [ctypes.c_char_p]
        objc.sel_registerName.restype = ctypes.c_void_p
        send = ctypes.cast(objc.objc_msgSend, ctypes.c_void_p).value
        if not send:
            raise OSError("objc_msgSend not found")
        self._send_id = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(send)
        self._send_long = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)(send)
        self._send_bool = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p)(send)
        self._sel = objc.sel_registerName
        cls = objc.objc_getClass(b"NSProcessInfo")
        if not cls:
            raise OSError("NSProcessInfo class not found")
        self._info = self._send_id(cls, self._sel(b"processInfo"))
        if not self._info:
            raise OSError("NSProcessInfo.processInfo returned nil")

    def thermal_state(self) -> int | None:
        return int(self._send_long(self._info, self._sel(b"thermalState")))

    def low_power_mode_enabled(self) -> bool | None:
        return bool(self._send_bool(self._info, self._sel(b"isLowPowerModeEnabled")))


_process_info_cache: list[ProcessInfoLike | None] = []


def load_process_info() -> ProcessInfoLike | None:
    """The real NSProcessInfo reader, or None where the runtime is not there. Loaded once."""
    if not _process_info_cache:
        reader: ProcessInfoLike | None
        try:
            reader = ObjcProcessInfo()
        except (OSError, AttributeError, TypeError, ValueError):
            reader = None
        _process_info_cache.append(reader)
    return _process_info_cache[0]


def _is_darwin(darwin: bool | None) -> bool:
    return sys.platform == "darwin" if darwin is None else darwin


def read_thermal_pressure(
    *,
    darwin: bool | None = None,
    libsystem: LibSystemLike | None = None,
    process_info: ProcessInfoLike | None = None,
    run: RunCommand = run_command,
) -> tuple[str | None, str | None]:
    """(level, source): the best thermal reading available, or (None, None) (e.g. on Linux).

    ``darwin`` defaults to "is this macOS"; the other arguments default to the real readers.
    """
    if not _is_darwin(darwin):
        return None, None
    lib = libsystem if libsystem is not None else load_libsystem()
    if lib is not None:
        level = read_notify_thermal_level(lib)
        if level is not None and 0 <= level < len(THERMAL_PRESSURE_LEVELS):
            return THERMAL_PRESSURE_LEVELS[level], "notify"
    info = process_info if process_info is not None else load_process_info()
    if info is not None:
        try:
            state = info.thermal_state()
        except (OSError, ctypes.ArgumentError, TypeError):
            state = None
        if state is not None and 0 <= state < len(NS_THERMAL_STATES):
            return NS_THERMAL_STATES[state], "nsprocessinfo"
    level_name = pmset_therm_level(run(["pmset", "-g", "therm"]))
    if level_name is not None:
        return level_name, "pmset"
    return None, None


def read_power_mode(
    *, darwin: bool | None = None, process_info: ProcessInfoLike | None = None, run: RunCommand = run_command
) -> tuple[bool | None, dict[str, int]]:
    """(low_power_mode, raw pmset settings). ``pmset -g`` first, then NSProcessInfo."""
    if not _is_darwin(darwin):
        return None, {}
    settings = parse_pmset_settings(run(["pmset", "-g"]))
    low_power = low_power_from_settings(settings)
    if low_power is None:
        info = process_info if process_info is not None else load_process_info()
        if info is not None:
            try:
                low_power = info.low_power_mode_enabled()
            except (OSError, ctypes.ArgumentError, TypeError):
                low_power = None
    return low_power, settings


def read_power_source(*, darwin: bool | None = None, run: RunCommand = run_command) -> dict[str, Any]:
    """{power_source, battery_percent, battery_state}: ``pmset -g batt`` on macOS, sysfs on Linux."""
    if _is_darwin(darwin):
        return parse_pmset_batt(run(["pmset", "-g", "batt"]))
    return _linux_power_source()


def _linux_power_source() -> dict[str, Any]:
    result: dict[str, Any] = {"power_source": None, "battery_percent": None, "battery_state": None}
    for supply in sorted(glob.glob("/sys/class/power_supply/*")):
        kind = _read_text(os.path.join(supply, "type"))
        if kind == "Mains" and _read_text(os.path.join(supply, "online")) == "1":
            result["power_source"] = "ac"
        elif kind == "Battery":
            status = _read_text(os.path.join(supply, "status"))
            capacity = _read_text(os.path.join(supply, "capacity"))
            result["battery_state"] = status.lower() if status else None
            result["battery_percent"] = int(capacity) if capacity and capacity.isdigit() else None
            if status == "Discharging" and result["power_source"] is None:
                result["power_source"] = "battery"
    return result


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def read_top_cpu(
    *, darwin: bool | None = None, run: RunCommand = run_command, exclude_pids: Sequence[int] = ()
) -> dict[str, Any] | None:
    """The process using the most CPU other than this one and `exclude_pids` (the agent's own
    agent / worker processes): {pid, command, cpu_percent}.

    ``ps`` %CPU is a decaying average on macOS and a lifetime average on Linux: it flags
    "another heavy process is running" (docs/MEASUREMENT.md, "Flags"), it is not a profiler.
    """
    if _is_darwin(darwin):
        argv = ["ps", "-Ao", "pid,pcpu,comm", "-r"]
    else:
        argv = ["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu"]
    return parse_ps_top(run(argv), exclude_pids=(os.getpid(), *exclude_pids))


def read_load_avg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def read_conditions(
    *,
    darwin: bool | None = None,
    libsystem: LibSystemLike | None = None,
    process_info: ProcessInfoLike | None = None,
    run: RunCommand = run_command,
    exclude_pids: Sequence[int] = (),
) -> dict[str, Any]:
    """The run conditions now; cheap enough to call every few seconds. None where unknown.

    Keys: thermal_pressure, thermal_source, low_power_mode, power_mode_raw, power_source,
    battery_percent, load_avg, top_cpu {pid, command, cpu_percent} (never this process nor
    one of `exclude_pids`: the agent passes its own agent and worker pids).
    """
    level, source = read_thermal_pressure(
        darwin=darwin, libsystem=libsystem, process_info=process_info, run=run
    )
    low_power, power_raw = read_power_mode(darwin=darwin, process_info=process_info, run=run)
    power = read_power_source(darwin=darwin, run=run)
    return {
        "thermal_pressure": level,
        "thermal_source": source,
        "low_power_mode": low_power,
        "power_mode_raw": power_raw,
        "power_source": power["power_source"],
        "battery_percent": power["battery_percent"],
        "load_avg": read_load_avg(),
        "top_cpu": read_top_cpu(darwin=darwin, run=run, exclude_pids=exclude_pids),
    }
