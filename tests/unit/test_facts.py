"""Node facts: parsers on recorded macOS output, the macOS assembly from recorded commands, the
real Linux collector, ``python -m node_agent probe`` end to end, and stdlib-only imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent import facts, facts_macos, textparse

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "macos"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


class FakeCommands:
    """macOS commands answered from recorded output; anything else is "not found" (None)."""

    def __init__(self, outputs: dict[tuple[str, ...], str]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str]) -> str | None:
        self.calls.append(tuple(argv))
        return self.outputs.get(tuple(argv))


def recorded_sysctl_output() -> str:
    """What one ``sysctl <names...>`` call prints, assembled from the recorded single outputs."""
    return "".join(
        [
            f"machdep.cpu.brand_string: {fixture('sysctl_brand_string.txt')}",
            f"hw.model: {fixture('sysctl_hw_model.txt')}",
            "hw.ncpu: 10\n",
            f"hw.memsize: {fixture('sysctl_hw_memsize.txt')}",
            fixture("sysctl_perflevels.txt"),
            "sysctl.proc_translated: 0\n",
            f"kern.boottime: {fixture('sysctl_boottime.txt')}",
            fixture("sysctl_swapusage.txt"),
            f"kern.memorystatus_vm_pressure_level: {fixture('sysctl_memorystatus_vm_pressure_level.txt')}",
        ]
    )


def combined_profiler_output() -> str:
    displays = json.loads(fixture("system_profiler_displays.json.txt"))
    hardware = json.loads(fixture("system_profiler_hardware.json.txt"))
    return json.dumps({**displays, **hardware})


# --- macOS parsers on recorded output ----------------------------------------------------------


def test_sysctl_lines() -> None:
    values = facts_macos.parse_sysctl_lines(fixture("sysctl_perflevels.txt"))
    assert values == {
        "hw.perflevel0.physicalcpu": "8",
        "hw.perflevel1.physicalcpu": "2",
        "hw.perflevel0.name": "Performance",
        "hw.perflevel1.name": "Efficiency",
        "hw.nperflevels": "2",
    }


def test_single_value_sysctls() -> None:
    assert fixture("sysctl_brand_string_m2pro.txt").strip() == "Apple M2 Pro"
    assert textparse.parse_int(fixture("sysctl_hw_memsize.txt")) == 17179869184
    assert textparse.parse_int("unknown oid") is None


def test_sw_vers() -> None:
    assert facts_macos.parse_sw_vers(fixture("sw_vers.txt")) == {
        "product_name": "macOS",
        "product_version": "14.2.1",
        "build_version": "23C71",
    }


def test_gpu_cores_is_a_string_in_system_profiler() -> None:
    assert facts_macos.parse_gpu_cores(fixture("system_profiler_displays.json.txt")) == 14
    assert facts_macos.parse_gpu_cores('{"SPDisplaysDataType": [{"_name": "Intel UHD"}]}') is None


def test_hardware_overview() -> None:
    assert facts_macos.parse_hardware_overview(fixture("system_profiler_hardware.json.txt")) == {
        "chip": "Apple M3 Pro",
        "hw_model": "Mac17,9",
        "cores_total": 12,
        "cores_p": 8,
        "cores_e": 4,
        "memory_bytes": 32 * 1024**3,
    }


def test_memory_pressure() -> None:
    assert facts_macos.parse_memory_pressure_free(fixture("memory_pressure.txt")) == 71
    assert (
        facts_macos.parse_memory_pressure_level(fixture("sysctl_memorystatus_vm_pressure_level.txt"))
        == "normal"
    )
    assert [facts_macos.parse_memory_pressure_level(v) for v in ("2", "4", "3", "")] == [
        "warn",
        "critical",
        None,
        None,
    ]


def test_vm_stat() -> None:
    assert facts_macos.parse_vm_stat(fixture("vm_stat.txt")) == {
        "page_size": 16384,
        "pages": {"pages_free": 12345},
    }


def test_swapusage_in_bytes() -> None:
    assert facts_macos.parse_swapusage(fixture("sysctl_swapusage.txt")) == {
        "total": 15360 * 1024**2,
        "used": 5120 * 1024**2,
        "free": 10240 * 1024**2,
    }


def test_boottime_and_loadavg() -> None:
    assert facts_macos.parse_boottime(fixture("sysctl_boottime.txt")) == pytest.approx(1700000000.123456)
    assert facts_macos.parse_loadavg(fixture("sysctl_loadavg.txt")) == [1.98, 2.08, 2.21]
    assert facts_macos.parse_loadavg("{ }") is None


@given(st.text())
def test_parsers_never_raise_on_odd_text(text: str) -> None:
    for parse in (
        facts_macos.parse_sysctl_lines,
        textparse.parse_int,
        facts_macos.parse_sw_vers,
        facts_macos.parse_gpu_cores,
        facts_macos.parse_hardware_overview,
        facts_macos.parse_memory_pressure_free,
        facts_macos.parse_memory_pressure_level,
        facts_macos.parse_vm_stat,
        facts_macos.parse_swapusage,
        facts_macos.parse_boottime,
        facts_macos.parse_loadavg,
        facts.parse_cpuinfo_model,
        facts.parse_meminfo,
        facts.parse_os_release,
        facts.parse_proc_uptime,
    ):
        parse(text)


@pytest.mark.parametrize(
    "text", ["[]", '{"SPDisplaysDataType": 3}', '{"SPHardwareDataType": [7]}', "null", '{"a": [1]}']
)
def test_system_profiler_parsers_take_odd_json(text: str) -> None:
    assert facts_macos.parse_gpu_cores(text) is None
    assert set(facts_macos.parse_hardware_overview(text).values()) == {None}


# --- macOS assembly from recorded commands -----------------------------------------------------


def test_macos_facts_from_recorded_commands() -> None:
    commands = FakeCommands(
        {
            ("sysctl", *facts_macos.SYSCTL_KEYS): recorded_sysctl_output(),
            ("sw_vers",): fixture("sw_vers.txt"),
            ("memory_pressure",): fixture("memory_pressure.txt"),
            facts_macos.PROFILER_ARGV: combined_profiler_output(),
        }
    )
    before = time.time()
    got = facts_macos.macos_facts(run=commands)
    after = time.time()
    assert got["os"] == "macos" and (got["os_version"], got["os_build"]) == ("14.2.1", "23C71")
    assert (got["chip"], got["hw_model"]) == ("Apple M1", "Mac14,6")
    assert (got["cores_total"], got["cores_p"], got["cores_e"]) == (10, 8, 2)
    assert got["memory_bytes"] == 17179869184 and got["gpu_cores"] == 14
    assert got["rosetta"] is False
    assert (got["memory_pressure"], got["memory_free_percent"]) == ("normal", 71)
    assert got["swap_used_bytes"] == 5120 * 1024**2
    # now - boot time, read between the two clock readings (rounded to 0.1 s)
    assert before - 1700000000.123456 - 0.06 <= got["uptime_s"] <= after - 1700000000.123456 + 0.06
    assert not any(call[:2] == ("sysctl", "-n") for call in commands.calls)  # one sysctl call sufficed


def test_macos_facts_fall_back_to_single_sysctls_then_system_profiler() -> None:
    commands = FakeCommands(
        {
            ("sysctl", *facts_macos.SYSCTL_KEYS): "hw.perflevel0.physicalcpu: 8\n",
            ("sysctl", "-n", "machdep.cpu.brand_string"): fixture("sysctl_brand_string_m2pro.txt"),
            facts_macos.PROFILER_ARGV: combined_profiler_output(),
        }
    )
    got = facts_macos.macos_facts(run=commands)
    assert got["chip"] == "Apple M2 Pro"  # from the single sysctl -n
    assert got["hw_model"] == "Mac17,9" and got["memory_bytes"] == 32 * 1024**3  # from system_profiler
    assert got["cores_p"] == 8 and got["cores_e"] == 4
    assert got["rosetta"] is None and got["os_version"] is None and got["uptime_s"] is None


# --- Linux, for real ---------------------------------------------------------------------------


def test_linux_parsers_on_samples() -> None:
    cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n"
    assert facts.parse_cpuinfo_model(cpuinfo) == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert facts.parse_cpuinfo_model("processor\t: 0\nHardware\t: BCM2835\n") == "BCM2835"
    meminfo = facts.parse_meminfo("MemTotal:       16318480 kB\nHugePages_Total:       0\n")
    assert meminfo == {"MemTotal": 16318480 * 1024, "HugePages_Total": 0}
    assert facts.parse_os_release('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == (
        "Debian GNU/Linux 12 (bookworm)"
    )
    assert facts.parse_proc_uptime("721.51 1400.10\n") == 721.51


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks the Linux collector")
def test_collect_facts_on_this_linux_box_is_filled() -> None:
    # how long it takes is a figure of tests/bench/bench_timings.py, not a pass/fail here
    got = facts.collect_facts()
    assert set(facts.FACT_KEYS) <= set(got)
    assert got["os"] == "linux" and got["chip"] and got["kernel"]
    assert got["cores_total"] == os.cpu_count() and got["memory_bytes"] > 64 * 1024**2
    assert got["uptime_s"] > 0 and len(got["load_avg"]) == 3
    assert got["python"] == sys.version.split()[0]
    assert set(got["libs"]) == {"numpy", "mlx", "coremltools"} and "numpy" in got["engines"]
    assert got["thermal_pressure"] is None and got["rosetta"] is None
    json.dumps(got)  # goes on the wire as is
    assert isinstance(got["collect_seconds"], float) and got["collect_seconds"] >= 0


def test_probe_command_prints_hello_facts_done() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "node_agent", "probe"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["type"] for e in events] == ["hello", "facts", "done"]
    probed = events[1]["facts"]
    assert probed["chip"] and probed["cores_total"] >= 1 and probed["memory_bytes"] > 0
    assert events[2]["ok"] is True


def test_agent_core_modules_import_only_the_stdlib() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import node_agent.facts, node_agent.thermal, node_agent.selftest\n"
        "new = set(sys.modules) - before\n"
        "std = sys.stdlib_module_names\n"
        "tops = {m.split('.')[0] for m in new}\n"
        "print(' '.join(sorted(t for t in tops if t not in std and t != 'node_agent')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == []


def test_the_macos_readers_never_import_the_generic_ones() -> None:
    """facts imports facts_macos (lazily, on macOS); the other way would be a cycle."""
    import ast

    from node_agent import facts_macos

    tree = ast.parse(Path(facts_macos.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "node_agent.facts" not in imported
    assert not any(
        isinstance(n, ast.ImportFrom) and n.module == "node_agent" and any(a.name == "facts" for a in n.names)
        for n in ast.walk(tree)
    )
