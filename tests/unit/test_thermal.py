"""Run conditions: pmset parsers on recorded output, the thermal source order through Fake
macOS readers, the real Linux path and its cost, and the real macOS readers on a Mac."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent import thermal

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "macos"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


class FakeLibSystem:
    """libSystem's notify(3) functions at the ctypes boundary: fixed return codes and state."""

    def __init__(self, state: int, register_status: int = 0, get_status: int = 0) -> None:
        self.state, self.register_status, self.get_status = state, register_status, get_status
        self.registered: list[bytes] = []
        self.cancelled: list[int] = []

    def notify_register_check(self, name: bytes, token_ref: Any, /) -> int:
        self.registered.append(name)
        if self.register_status == 0:
            token_ref._obj.value = 42  # byref(c_int): write through like the C call does
        return self.register_status

    def notify_get_state(self, token: Any, state_ref: Any, /) -> int:
        assert token.value == 42
        if self.get_status == 0:
            state_ref._obj.value = self.state
        return self.get_status

    def notify_cancel(self, token: Any, /) -> int:
        self.cancelled.append(token.value)
        return 0


class FakeProcessInfo:
    def __init__(self, state: int | None, low_power: bool | None = None) -> None:
        self.state, self.low_power = state, low_power

    def thermal_state(self) -> int | None:
        return self.state

    def low_power_mode_enabled(self) -> bool | None:
        return self.low_power


class FakeCommands:
    """macOS commands answered from recorded output; anything else is "not found" (None)."""

    def __init__(self, outputs: dict[tuple[str, ...], str]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> str | None:
        self.calls.append(tuple(argv))
        return self.outputs.get(tuple(argv))


PS_OUTPUT = f"""  PID  %CPU COMM
{os.getpid()}  99.0 /usr/bin/python3
  812  37.5 /Applications/Google Chrome.app/Contents/MacOS/Google Chrome
    1   0.1 /sbin/launchd
"""


# --- parsers ----------------------------------------------------------------------------------


def test_pmset_therm_apple_silicon_has_only_notes() -> None:
    parsed = thermal.parse_pmset_therm(fixture("pmset_therm_apple_silicon.txt"))
    assert parsed["cpu_speed_limit"] is None
    assert parsed["notes"] == [
        "No thermal warning level has been recorded",
        "No performance warning level has been recorded",
        "No CPU power status has been recorded",
    ]
    assert thermal.pmset_therm_level(fixture("pmset_therm_apple_silicon.txt")) is None


def test_pmset_therm_intel_speed_limit_means_throttled() -> None:
    text = fixture("pmset_therm_intel.txt")
    parsed = thermal.parse_pmset_therm(text)
    assert (parsed["cpu_speed_limit"], parsed["cpu_scheduler_limit"], parsed["cpu_available_cpus"]) == (
        35,
        100,
        8,
    )
    assert thermal.pmset_therm_level(text) == "throttled"
    assert thermal.pmset_therm_level(text.replace("= 35", "= 100")) == "nominal"


@pytest.mark.parametrize(
    ("name", "raw", "low_power"),
    [
        ("pmset_g_lowpowermode.txt", {"lowpowermode": 0}, False),
        ("pmset_g_lowpowermode_on.txt", {"lowpowermode": 1}, True),
        ("pmset_g_powermode.txt", {"powermode": 1}, True),
    ],
)
def test_pmset_settings(name: str, raw: dict[str, int], low_power: bool) -> None:
    settings = thermal.parse_pmset_settings(fixture(name))
    assert settings == raw
    assert thermal.low_power_from_settings(settings) is low_power


def test_pmset_settings_without_either_key_is_unknown() -> None:
    assert (
        thermal.low_power_from_settings(thermal.parse_pmset_settings("Currently in use:\n sleep 1\n")) is None
    )


@pytest.mark.parametrize(
    ("name", "source", "percent", "state"),
    [
        ("pmset_batt_desktop.txt", "ac", None, None),
        ("pmset_batt_laptop_ac.txt", "ac", 87, "charging"),
        ("pmset_batt_laptop_battery.txt", "battery", 64, "discharging"),
    ],
)
def test_pmset_batt(name: str, source: str, percent: int | None, state: str | None) -> None:
    assert thermal.parse_pmset_batt(fixture(name)) == {
        "power_source": source,
        "battery_percent": percent,
        "battery_state": state,
    }


def test_pmset_batt_ups_is_not_guessed() -> None:
    assert thermal.parse_pmset_batt("Now drawing from 'UPS Power'\n")["power_source"] is None


def test_ps_top_skips_the_agent_and_keeps_spaces_in_commands() -> None:
    top = thermal.parse_ps_top(PS_OUTPUT, exclude_pids=(os.getpid(),))
    assert top == {
        "pid": 812,
        "command": "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
        "cpu_percent": 37.5,
    }
    assert thermal.parse_ps_top("  PID  %CPU COMM\n", exclude_pids=()) is None


@given(st.text())
def test_parsers_never_raise_on_odd_text(text: str) -> None:
    thermal.parse_pmset_therm(text)
    thermal.pmset_therm_level(text)
    thermal.low_power_from_settings(thermal.parse_pmset_settings(text))
    thermal.parse_pmset_batt(text)
    thermal.parse_ps_top(text)


# --- thermal source order (Fake readers at the macOS boundary) --------------------------------


@pytest.mark.parametrize("state", range(5))
def test_notify_levels_map_to_names(state: int) -> None:
    lib = FakeLibSystem(state)
    level = thermal.read_thermal_pressure(darwin=True, libsystem=lib, process_info=FakeProcessInfo(None))
    assert level == (thermal.THERMAL_PRESSURE_LEVELS[state], "notify")
    assert lib.registered == [b"com.apple.system.thermalpressurelevel"]
    assert lib.cancelled == [42]  # the registration is always released


def test_get_state_failure_cancels_and_falls_back_to_processinfo() -> None:
    lib = FakeLibSystem(0, get_status=1)
    level = thermal.read_thermal_pressure(darwin=True, libsystem=lib, process_info=FakeProcessInfo(1))
    assert level == ("fair", "nsprocessinfo")
    assert lib.cancelled == [42]


def test_register_failure_does_not_cancel_an_unregistered_token() -> None:
    lib = FakeLibSystem(0, register_status=1000000)
    assert thermal.read_thermal_pressure(darwin=True, libsystem=lib, process_info=FakeProcessInfo(3)) == (
        "critical",
        "nsprocessinfo",
    )
    assert lib.cancelled == []


def test_out_of_range_notify_value_is_not_named_but_falls_back() -> None:
    commands = FakeCommands({("pmset", "-g", "therm"): fixture("pmset_therm_intel.txt")})
    level = thermal.read_thermal_pressure(
        darwin=True, libsystem=FakeLibSystem(20), process_info=FakeProcessInfo(None), run=commands
    )
    assert level == ("throttled", "pmset")


def test_no_source_gives_none_none() -> None:
    commands = FakeCommands({("pmset", "-g", "therm"): fixture("pmset_therm_apple_silicon.txt")})
    level = thermal.read_thermal_pressure(
        darwin=True,
        libsystem=FakeLibSystem(0, register_status=1),
        process_info=FakeProcessInfo(None),
        run=commands,
    )
    assert level == (None, None)


def test_notify_reader_passes_ctypes_references() -> None:
    class FakeLibSystemCheckingTypes(FakeLibSystem):
        def notify_register_check(self, name: bytes, token_ref: Any, /) -> int:
            assert isinstance(token_ref._obj, ctypes.c_int)
            return super().notify_register_check(name, token_ref)

        def notify_get_state(self, token: Any, state_ref: Any, /) -> int:
            assert isinstance(state_ref._obj, ctypes.c_uint64)
            return super().notify_get_state(token, state_ref)

    assert thermal.read_notify_thermal_level(FakeLibSystemCheckingTypes(2)) == 2


def test_read_conditions_on_a_fake_mac_laptop() -> None:
    commands = FakeCommands(
        {
            ("pmset", "-g"): fixture("pmset_g_lowpowermode_on.txt"),
            ("pmset", "-g", "batt"): fixture("pmset_batt_laptop_battery.txt"),
            ("ps", "-Ao", "pid,pcpu,comm", "-r"): PS_OUTPUT,
        }
    )
    conditions = thermal.read_conditions(
        darwin=True, libsystem=FakeLibSystem(1), process_info=FakeProcessInfo(0), run=commands
    )
    assert conditions["thermal_pressure"] == "moderate" and conditions["thermal_source"] == "notify"
    assert conditions["low_power_mode"] is True and conditions["power_mode_raw"] == {"lowpowermode": 1}
    assert conditions["power_source"] == "battery" and conditions["battery_percent"] == 64
    assert conditions["top_cpu"]["pid"] == 812
    assert len(conditions["load_avg"]) == 3
    assert ("pmset", "-g", "therm") not in commands.calls  # notify answered; no process spent on pmset


def test_read_conditions_skips_the_agents_own_worker_pids() -> None:
    commands = FakeCommands({("ps", "-Ao", "pid,pcpu,comm", "-r"): PS_OUTPUT})
    conditions = thermal.read_conditions(
        darwin=True,
        libsystem=FakeLibSystem(0),
        process_info=FakeProcessInfo(0),
        run=commands,
        exclude_pids=(812,),  # e.g. a measuring worker: the next process is the contender
    )
    assert conditions["top_cpu"]["pid"] == 1


def test_low_power_falls_back_to_processinfo_when_pmset_lacks_both_keys() -> None:
    commands = FakeCommands({("pmset", "-g"): "System-wide power settings:\n"})
    assert thermal.read_power_mode(
        darwin=True, process_info=FakeProcessInfo(0, low_power=True), run=commands
    ) == (
        True,
        {},
    )


# --- the real readers -------------------------------------------------------------------------


def test_read_conditions_here_excludes_the_agent() -> None:
    # its cost per call is a figure of tests/bench/bench_timings.py, not a pass/fail here
    conditions = thermal.read_conditions()
    assert set(conditions) >= {
        "thermal_pressure",
        "thermal_source",
        "low_power_mode",
        "power_source",
        "load_avg",
        "top_cpu",
    }
    assert len(conditions["load_avg"]) == 3
    if conditions["top_cpu"] is not None:
        assert conditions["top_cpu"]["pid"] != os.getpid()
    if sys.platform.startswith("linux"):
        assert (conditions["thermal_pressure"], conditions["thermal_source"]) == (None, None)


@pytest.mark.macos
@pytest.mark.skipif(sys.platform != "darwin", reason="needs macOS: calls the real Darwin readers")
def test_real_macos_readers() -> None:
    lib = thermal.load_libsystem()
    assert lib is not None
    level = thermal.read_notify_thermal_level(lib)
    assert level is not None and 0 <= level <= 4
    info = thermal.ObjcProcessInfo()
    state = info.thermal_state()
    assert state is not None and 0 <= state <= 3
    assert isinstance(info.low_power_mode_enabled(), bool)
    conditions = thermal.read_conditions()
    assert conditions["thermal_source"] == "notify"
    assert conditions["power_source"] in ("ac", "battery")
    assert conditions["low_power_mode"] in (True, False)
