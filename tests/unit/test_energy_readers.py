"""Energy readers' parsers on every recorded output, their errors, and IOReport's pure parts.

The recordings are in tests/fixtures/energy/ (SOURCES.txt says where each came from). A line
that does not parse must be a `ReaderError` naming the reader and the line, never a zero.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node_agent.energy import PowerSample, ReaderError, ReaderUnavailable
from node_agent.energy.base import parse_version, printable
from node_agent.energy.ioreport import (
    ChannelSpanTracker,
    IOReportReader,
    classify_channels,
    energy_joules,
    group_energies,
    sample_deltas,
)
from node_agent.energy.macmon import MacmonReader, macmon_schema, parse_macmon_line, parse_macmon_object
from node_agent.energy.mactop import MactopReader, infer_system_meaning, parse_mactop_object
from node_agent.energy.powermetrics import PowermetricsParser, PowermetricsReader, parse_powermetrics_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "energy"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def jsonc_object(text: str) -> Any:
    """The annotated README examples: the {...} with // comments and trailing commas removed."""
    body = text[text.index("{") : text.rindex("}") + 1]
    body = re.sub(r"\s*//[^\n]*", "", body)
    body = re.sub(r",(\s*[}\]])", r"\1", body)
    return json.loads(body)


def markdown_json(text: str) -> Any:
    return json.loads(text.split("```json", 1)[1].split("```", 1)[0])


# --- macmon ---------------------------------------------------------------------------------


def test_macmon_06_raw_line_from_beszel_issue() -> None:
    line = fixture("macmon_0.6_pipe_i1000_beszel1796.jsonl").strip()
    watts = parse_macmon_line(line, line_no=1)
    assert watts == {
        "cpu": 0.25233203172683716,
        "gpu": 0.004442947451025248,
        "ane": 0.0,
        "dram": 0.0,
        "gpu_sram": 0.0,
        "system": 9.391488075256348,
    }
    assert macmon_schema(json.loads(line)) == "<=0.6"


def test_macmon_06_raw_line_from_beszel_test() -> None:
    watts = parse_macmon_line(fixture("macmon_0.6_pipe_beszel_test.jsonl").strip())
    assert watts["cpu"] == 0.6359732151031494 and watts["dram"] == 0.14885640144348145
    assert watts["gpu_sram"] == 0.000965250947047025 and watts["system"] == 10.4955415725708


def test_macmon_06_readme_example() -> None:
    obj = jsonc_object(fixture("macmon_0.6_readme_example.jsonc.txt"))
    assert macmon_schema(obj) == "<=0.6"
    watts = parse_macmon_object(obj)
    assert watts == {
        "cpu": 0.20486385,
        "gpu": 0.017451683,
        "ane": 0.0,
        "dram": 0.11635789,
        "gpu_sram": 0.0009615385,
        "system": 5.876533,
    }


def test_macmon_08_readme_example_is_the_new_schema_with_the_same_power_keys() -> None:
    obj = jsonc_object(fixture("macmon_0.8.2_readme_example.jsonc.md"))
    assert macmon_schema(obj) == ">=0.7"
    assert parse_macmon_object(obj) == parse_macmon_object(
        jsonc_object(fixture("macmon_0.6_readme_example.jsonc.txt"))
    )


def test_macmon_nested_power_names_parse_too() -> None:
    obj = {"power": {"cpu": 1.5, "gpu": 2.0, "ane": 0.25, "ram": 0.5, "gpu_ram": 0.0, "board": 12.0}}
    assert parse_macmon_object(obj) == {
        "cpu": 1.5,
        "gpu": 2.0,
        "ane": 0.25,
        "dram": 0.5,
        "gpu_sram": 0.0,
        "system": 12.0,
    }


def test_macmon_zero_sys_power_means_no_system_sensor() -> None:
    watts = parse_macmon_object({"cpu_power": 1.0, "gpu_power": 0.0, "ane_power": 0.0, "sys_power": 0.0})
    assert "system" not in watts and watts["cpu"] == 1.0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("this is not json {", "not JSON"),
        ('{"gpu_power": 1.0, "ane_power": 0.0}', "no cpu_power"),
        ('{"cpu_power": "1.0", "gpu_power": 1.0, "ane_power": 0.0}', "cpu_power is not"),
        ('{"cpu_power": -1.0, "gpu_power": 1.0, "ane_power": 0.0}', "cpu_power is not"),
        ('{"cpu_power": true, "gpu_power": 1.0, "ane_power": 0.0}', "cpu_power is not"),
        ('{"cpu_power": NaN, "gpu_power": 1.0, "ane_power": 0.0}', "cpu_power is not"),
        ("[1, 2]", "expected a JSON object"),
        ("", "not JSON"),
    ],
)
def test_macmon_bad_lines_are_reader_errors_naming_reader_and_line(line: str, message: str) -> None:
    with pytest.raises(ReaderError) as caught:
        parse_macmon_line(line, line_no=7)
    assert caught.value.reader == "macmon" and caught.value.line_no == 7
    assert message in str(caught.value) and str(caught.value).startswith("macmon line 7: ")


def test_macmon_reader_skips_blank_lines_and_stamps_on_arrival() -> None:
    reader = MacmonReader(500, executable="/nonexistent/macmon")
    assert reader.parse_line("", 1, 10) == []
    [sample] = reader.parse_line(fixture("macmon_0.6_pipe_beszel_test.jsonl").strip(), 2, 12_345)
    assert isinstance(sample, PowerSample)
    assert sample.t_ns == 12_345 and sample.line_no == 2 and sample.interval_ns == 500_000_000
    assert reader.notes["schema"] == "<=0.6"


def test_macmon_argv_always_names_the_interval_and_clamps_it() -> None:
    assert MacmonReader(250).argv("macmon") == ["macmon", "pipe", "-i", "250"]
    assert MacmonReader(20).argv("macmon") == ["macmon", "pipe", "-i", "100"]


def test_a_reader_error_never_carries_control_characters() -> None:
    with pytest.raises(ReaderError) as caught:
        parse_macmon_line("\x1b[31mboom\x07", line_no=1)
    assert "\x1b" not in str(caught.value) and "\x07" not in str(caught.value)
    assert printable("a\x00b\x9bc\td\n") == "a?b?c\td\n"


# --- mactop ---------------------------------------------------------------------------------


def mactop_line(name: str) -> str:
    """The fixture's one array element as the single line ``--count 0`` prints."""
    [obj] = markdown_json(fixture(name))
    return json.dumps(obj)


def test_mactop_old_meaning_sample_by_version() -> None:
    obj = json.loads(mactop_line("mactop_0.2.7_readme_headless.json.md"))
    watts, meaning = parse_mactop_object(obj, "whole_system")
    assert meaning == "whole_system"
    assert watts == {
        "cpu": 5.971,
        "gpu": 1.43491417,
        "ane": 0.0,
        "dram": 4.119,
        "gpu_sram": 0.04,
        "system": 45.92987823486328,
    }


def test_mactop_old_meaning_is_recognised_from_the_line_when_the_version_is_unknown() -> None:
    obj = json.loads(mactop_line("mactop_0.2.7_readme_headless.json.md"))
    watts, meaning = parse_mactop_object(obj, None)
    assert meaning == "whole_system" and watts["system"] == 45.92987823486328


def test_mactop_new_meaning_system_is_total_power() -> None:
    obj = json.loads(mactop_line("mactop_2.x_readme_headless.json.md"))
    watts, meaning = parse_mactop_object(obj, None)
    assert meaning == "residual"
    assert watts["system"] == 50.91318893432617
    assert watts["cpu"] == 2.1959999999999997 and watts["gpu"] == 5.38552801 and watts["dram"] == 5.702
    assert parse_mactop_object(obj, "residual") == (watts, "residual")


def test_mactop_meaning_identity_check() -> None:
    rails = {"cpu": 1.0, "gpu": 2.0, "ane": 0.0, "dram": 1.0}
    assert infer_system_meaning(rails, system=6.0, total=10.0) == "residual"
    assert infer_system_meaning(rails, system=30.0, total=4.0) == "whole_system"
    assert infer_system_meaning(rails, system=0.0, total=4.0) == "residual"  # 0 W whole machine: impossible
    assert infer_system_meaning(rails, system=3.0, total=99.0) is None


@pytest.mark.parametrize(
    ("version", "meaning"), [("0.2.6", "whole_system"), ("0.2.7", "residual"), ("2.1.3", "residual")]
)
def test_mactop_reader_takes_the_meaning_from_its_version(version: str, meaning: str) -> None:
    reader = MactopReader(1000, executable="/nonexistent/mactop")
    reader._version, reader._version_read = version, True
    [sample] = reader.parse_line(mactop_line("mactop_2.x_readme_headless.json.md"), 1, 99)
    expected = 50.91318893432617 if meaning == "residual" else 37.47166092432617
    assert sample.watts["system"] == expected  # type: ignore[union-attr]


def test_mactop_reader_notes_a_line_that_contradicts_its_version() -> None:
    reader = MactopReader(1000, executable="/nonexistent/mactop")
    reader._version, reader._version_read = "0.2.7", True  # the README sample predates the change
    reader.parse_line(mactop_line("mactop_0.2.7_readme_headless.json.md"), 4, 99)
    assert reader.notes == {"system_meaning_conflict": {"line": 4, "line_says": "whole_system"}}
    reader.parse_line(mactop_line("mactop_2.x_readme_headless.json.md"), 5, 100)
    assert reader.notes["system_meaning_conflict"]["line"] == 4


def test_mactop_reader_records_a_meaning_read_from_the_data() -> None:
    reader = MactopReader(1000, executable="/nonexistent/mactop")
    reader._version, reader._version_read = None, True
    reader.parse_line(mactop_line("mactop_0.2.7_readme_headless.json.md"), 1, 99)
    assert reader.notes == {"system_power_meaning": "whole_system", "system_meaning_source": "data"}


def test_mactop_old_version_is_unavailable_and_argv_always_passes_the_interval(tmp_path: Path) -> None:
    missing = MactopReader(750, executable=str(tmp_path / "mactop"))
    assert missing.unavailable_reason() == "mactop not found on PATH"
    tool = tmp_path / "bin" / "mactop"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho 'mactop version: v0.2.4'\n")
    tool.chmod(0o755)
    old = MactopReader(750, executable=str(tool))
    assert old.version() == "0.2.4"
    assert old.unavailable_reason() == "mactop 0.2.4 needs sudo; headless without sudo needs v0.2.5 or later"
    reader = MactopReader(750, executable=str(tool))
    argv = reader.argv("mactop")
    assert argv == ["mactop", "--headless", "--format", "json", "-i", "750", "--count", "0"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"timestamp": "x"}', "soc_metrics"),
        ('{"soc_metrics": {"gpu_power": 1, "ane_power": 0}}', "no soc_metrics.cpu_power"),
        ('{"soc_metrics": {"cpu_power": null, "gpu_power": 1, "ane_power": 0}}', "cpu_power is not"),
        ("[", "not JSON"),
    ],
)
def test_mactop_bad_lines_are_reader_errors(line: str, message: str) -> None:
    reader = MactopReader(1000, executable="/nonexistent/mactop")
    reader._version, reader._version_read = "2.1.3", True
    with pytest.raises(ReaderError) as caught:
        reader.parse_line(line, 3, 0)
    assert caught.value.reader == "mactop" and caught.value.line_no == 3 and message in str(caught.value)


# --- powermetrics ---------------------------------------------------------------------------


def test_powermetrics_macos13_block() -> None:
    [sample] = parse_powermetrics_text(fixture("powermetrics_macos13.6_m1max.txt"))
    assert sample.watts == {"cpu": 0.211, "gpu": 0.147, "ane": 0.0, "combined": 0.359}
    assert sample.interval_ns == 1_012_070_000
    assert sample.line_no == 8  # stamped at its header


def test_powermetrics_macos12_spliced_capture_has_one_power_block() -> None:
    """The spliced fixture: a tasks-only block (no power) and then the cpu_power block."""
    [sample] = parse_powermetrics_text(fixture("powermetrics_macos12.5_m2_spliced.txt"))
    assert sample.watts == {"ane": 0.0, "dram": 0.019, "cpu": 0.010, "gpu": 0.0, "package": 0.025}
    assert sample.interval_ns == 1_002_800_000


def test_powermetrics_macos12_tail() -> None:
    """The tail lost its header: one is put back, as the real stream always starts with one."""
    header = "*** Sampled system activity (Tue Nov 28 11:28:55 2023 +0100) (1000.00ms elapsed) ***\n"
    [sample] = parse_powermetrics_text(header + fixture("powermetrics_macos12_m1_tail.txt"))
    assert sample.watts == {"ane": 0.0, "dram": 0.688, "cpu": 0.742, "gpu": 0.026, "package": 2.151}


def test_powermetrics_macos12_tail_without_header_is_a_reader_error() -> None:
    with pytest.raises(ReaderError, match="before any sample header"):
        parse_powermetrics_text(fixture("powermetrics_macos12_m1_tail.txt"))


def test_powermetrics_macos26_gpu_power_sampler() -> None:
    [sample] = parse_powermetrics_text(fixture("powermetrics_macos26.3_gpu_power.txt"))
    assert sample.watts == {"gpu": 0.004}
    assert sample.interval_ns == 503_050_000


def test_powermetrics_reader_needs_cpu_and_gpu_in_every_block() -> None:
    with pytest.raises(ReaderError, match="without cpu"):
        parse_powermetrics_text(fixture("powermetrics_macos26.3_gpu_power.txt"), required=("cpu", "gpu"))


def test_powermetrics_duplicate_gpu_power_first_counts_and_a_differing_one_is_noted() -> None:
    parser = PowermetricsParser()
    lines = [
        "*** Sampled system activity (Sat Feb 14 00:42:06 2026 -0500) (500.00ms elapsed) ***",
        "CPU Power: 211 mW",
        "GPU Power: 147 mW",
        "ANE Power: 0 mW",
        "Combined Power (CPU + GPU + ANE): 358 mW",
        "GPU idle residency:  99.03%",
        "GPU Power: 147 mW",
        "GPU Power: 150 mW",
        "*** Sampled system activity (Sat Feb 14 00:42:07 2026 -0500) (500.00ms elapsed) ***",
    ]
    samples = [s for i, line in enumerate(lines) for s in parser.feed(line, i + 1, 1000 + i)]
    assert [s.watts for s in samples] == [{"cpu": 0.211, "gpu": 0.147, "ane": 0.0, "combined": 0.358}]
    assert samples[0].t_ns == 1000
    assert parser.duplicate_values == [(8, "gpu", 0.147, 0.150)]


@pytest.mark.parametrize("bad", ["CPU Power: lots mW", "CPU Power: 5 kW", "CPU Power:", "GPU Power: -3 mW"])
def test_powermetrics_unreadable_power_line_is_a_reader_error(bad: str) -> None:
    parser = PowermetricsParser()
    parser.feed("*** Sampled system activity (x) (1000.00ms elapsed) ***", 1, 0)
    with pytest.raises(ReaderError) as caught:
        parser.feed(bad, 2, 1)
    assert caught.value.reader == "powermetrics" and caught.value.line_no == 2


def test_powermetrics_only_as_root_and_never_asks_for_a_password() -> None:
    reason = PowermetricsReader(1000, euid=501).unavailable_reason()
    assert reason is not None and "root" in reason
    argv = PowermetricsReader(1000, euid=0).argv("/usr/bin/powermetrics")
    assert "sudo" not in argv and argv[-2:] == ["-i", "1000"]


# --- IOReport: the parts that do not need a Mac ---------------------------------------------


def excerpt_channels() -> dict[str, str]:
    """name -> unit from the excerpt's tab-separated channel dump, plus the per-die CPU channels
    the excerpt's counter ticks name (its dump is cut before them)."""
    units = {}
    for line in fixture("ioreport_energy_model_m1ultra_excerpt.txt").splitlines():
        if "\t" in line and not line.startswith("#") and line.count("\t") == 1:
            name, unit = line.split("\t")
            units[name] = unit
    units["DIE_0_CPU Energy"] = units["DIE_1_CPU Energy"] = "mJ"
    return units


def excerpt_tick(number: str) -> list[tuple[str, str, int]]:
    """(channel, unit, delta) of one counter tick line of the excerpt (e.g. "054")."""
    line = next(
        x
        for x in fixture("ioreport_energy_model_m1ultra_excerpt.txt").splitlines()
        if x.startswith(number + " ")
    )
    body = line.split("||")[0]
    return [
        (m.group(1).strip(), m.group(3), int(m.group(2)))
        for m in re.finditer(r"(?:^\S+ t=\S+ sample=\S+ |\| )([^|=]+?) dv=(\d+)(mJ|nJ|uJ)", body)
    ]


def test_unit_conversion() -> None:
    assert energy_joules(23296, "mJ") == pytest.approx(23.296, rel=1e-15)
    assert energy_joules(31385200, "nJ") == pytest.approx(0.0313852, rel=1e-15)
    assert energy_joules(5_000_000, "uJ") == pytest.approx(5.0, rel=1e-15)
    assert energy_joules(5_000_000, "\u00b5J") == energy_joules(5_000_000, " uJ ")
    with pytest.raises(ValueError, match="not an energy unit"):
        energy_joules(1, "mW")


def test_channel_grouping_on_the_m1_ultra_dump() -> None:
    rails = classify_channels(excerpt_channels())
    assert rails == {
        "GPU Energy": "gpu",
        "GPU SRAM0_0": "gpu_sram",
        "ANE0_0": "ane",
        "ANE0_1": "ane",
        "DRAM0_0": "dram",
        "DRAM0_1": "dram",
        "DIE_0_CPU Energy": "cpu",
        "DIE_1_CPU Energy": "cpu",
    }  # GPU0_0 (the GPU again, in mJ), PCIe, ISP, AVE, per-core DTL channels: not summed


def test_channel_grouping_uses_gpu_blocks_only_without_the_gpu_total() -> None:
    rails = classify_channels(
        ["CPU Energy", "GPU0", "GPU1", "GPU0_1", "GPU", "ANE", "ANE0_SRAM", "DRAM", "DRAMX"]
    )
    assert rails == {"CPU Energy": "cpu", "GPU0": "gpu", "GPU1": "gpu", "ANE": "ane", "DRAM": "dram"}
    assert classify_channels(["GPU0_0", "GPU0_1"]) == {"GPU0_0": "gpu", "GPU0_1": "gpu"}


def test_channel_grouping_never_adds_per_die_channels_to_a_package_total() -> None:
    names = [
        "CPU Energy",
        "DIE_0_CPU Energy",
        "DIE_1_CPU Energy",
        "ANE",
        "ANE0",
        "ANE0_1",
        "DRAM0",
        "DRAM0_0",
    ]
    assert classify_channels(names) == {"CPU Energy": "cpu", "ANE": "ane", "DRAM0": "dram"}


def test_one_recorded_tick_summed_by_rail() -> None:
    items = excerpt_tick("054")
    assert len(items) == 8
    joules = group_energies(items, classify_channels(excerpt_channels()))
    assert joules == pytest.approx({"cpu": 25.329, "gpu": 0.0313852, "ane": 0.312, "dram": 6.733}, rel=1e-12)


def excerpt_tick_time_ns(number: str) -> int:
    line = next(
        x
        for x in fixture("ioreport_energy_model_m1ultra_excerpt.txt").splitlines()
        if x.startswith(number + " ")
    )
    return round(float(line.split()[1].removeprefix("t=").removesuffix("s")) * 1e9)


def test_recorded_lumpy_ticks_give_each_delta_the_span_since_its_channels_last_publication() -> None:
    """Ticks 053-055 of the M1 Ultra excerpt: only the nJ GPU channel moves, then the mJ batch
    (about 1.7 s of energy at once), then a small second batch 120 ms later."""
    rails = classify_channels(excerpt_channels())
    start = excerpt_tick_time_ns("053") - 120_000_000
    tracker = ChannelSpanTracker(start)
    t53, t54, t55 = (excerpt_tick_time_ns(n) for n in ("053", "054", "055"))

    first = sample_deltas(excerpt_tick("053"), rails, tracker, t53)
    assert [(d.channel, d.span_start_ns, d.t_ns) for d in first] == [("GPU Energy", start, t53)]
    assert first[0].joules == pytest.approx(0.01506683, rel=1e-12)  # no mJ zero read as "idle"

    batch = {d.channel: d for d in sample_deltas(excerpt_tick("054"), rails, tracker, t54)}
    assert set(batch) == {
        "DIE_0_CPU Energy",
        "DIE_1_CPU Energy",
        "ANE0_0",
        "ANE0_1",
        "DRAM0_0",
        "DRAM0_1",
        "GPU Energy",
    }
    assert batch["DIE_0_CPU Energy"].span_start_ns == start and batch["DIE_0_CPU Energy"].joules == 23.296
    assert batch["GPU Energy"].span_start_ns == t53

    tail = {d.channel: d for d in sample_deltas(excerpt_tick("055"), rails, tracker, t55)}
    assert tail["ANE0_1"].joules == 0.0 and tail["ANE0_1"].span_start_ns == t54  # its batch came without it
    assert tail["DIE_0_CPU Energy"].joules == 0.232 and tail["DIE_0_CPU Energy"].span_start_ns == t54
    # only the GPU channel has published three times yet: its ~120 ms is the cadence seen so far
    assert tracker.observed_cadence_ms() == 120.0  # spans of 120, 121 and 119 ms


def test_a_counter_that_goes_backwards_is_an_error() -> None:
    tracker = ChannelSpanTracker(0)
    with pytest.raises(ValueError, match="backwards"):
        tracker.update("CPU Energy", "cpu", -1.0, 1, batch_published=True)


def test_ioreport_reader_off_macos_is_unavailable_with_the_reason() -> None:
    reader = IOReportReader(500, darwin=False)
    assert reader.unavailable_reason() == "needs macOS (libIOReport)"
    with pytest.raises(ReaderUnavailable, match="needs macOS"):
        reader.start()
    reader.stop()
    reader.stop()  # idempotent


def test_importing_the_energy_package_loads_no_native_library() -> None:
    code = (
        "import sys, node_agent.energy, node_agent.energy.ioreport as io\n"
        "assert io._native_cache == [], io._native_cache\n"
        "heavy = {'numpy', 'mlx', 'coremltools'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_version_strings() -> None:
    assert parse_version("macmon 0.6.1") == (0, 6, 1)
    assert parse_version("mactop version: v2.1.3") == (2, 1, 3)
    assert parse_version("mactop version: v0.2") == (0, 2, 0)
    assert parse_version("no version here") is None
