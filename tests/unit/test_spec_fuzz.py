"""Every number of a sweep spec, at the edges: out of range is a spec error naming the field.

The numeric fields are read from the spec's dataclasses (a new number is fuzzed without touching
this file). Each is set to 0, negative, 1e308, nan, inf, 2**63 and more: the spec either parses (a
value in its documented range) or raises SpecError naming the file, the line and the field; never
another exception. The same edges through `fleet-tui sweep SPEC --dry-run` (in-process) exit 2 with
the field on stderr, or plan the sweep (exit 0) when the value is in range.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fleet_tui.cli.parser import main
from fleet_tui.config import spec as spec_module
from fleet_tui.config.spec import (
    MAX_POOLED_SAMPLES,
    MAXIMUMS,
    BucketSpec,
    GateSpec,
    MeasureSpec,
    SchedulerSpec,
    SpecError,
    parse_spec,
)

NUMERIC_TYPES = {"int", "float", "float | None"}
TABLES: dict[type, str] = {
    BucketSpec: "bucket",
    MeasureSpec: "[measure]",
    GateSpec: "[gates]",
    SchedulerSpec: "[scheduler]",
}
"""Which TOML table each spec dataclass with numbers is written in."""


def numeric_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.type in NUMERIC_TYPES]


FIELDS = [(table, key) for cls, table in TABLES.items() for key in numeric_fields(cls)]
EDGES = ["0", "-1", "-1e308", "1e308", "nan", "inf", "-inf", str(2**63), str(2**63 - 1), "1.5", "true", '"3"']
ALWAYS_BAD = {"-1", "-1e308", "1e308", "nan", "inf", "-inf", str(2**63), str(2**63 - 1), "true", '"3"'}
CLI_EDGES = ["0", "-1", "1e308", "nan", str(2**63)]


def spec_with(table: str, key: str, value: str) -> str:
    """A valid spec (every other field at its default) with `key = value` in `table`."""
    bucket = f"budget_ms = {value}" if (table, key) == ("bucket", "budget_ms") else "budget_ms = 5.0"
    sections = {
        name: f"{key} = {value}\n" if name == table else ""
        for name in ("[measure]", "[gates]", "[scheduler]")
    }
    return (
        'name = "fuzz"\n[[workload]]\nname = "mlp"\n'
        f'  [[workload.bucket]]\n  name = "b1"\n  {bucket}\n'
        '[engines]\nnumpy = [{ dtype = "fp64" }]\n'
        + "".join(f"{name}\n{body}" for name, body in sections.items())
    )


def line_of(text: str, key: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith(f"{key} ="))


def test_every_spec_dataclass_with_numbers_is_fuzzed() -> None:
    with_numbers = {
        cls
        for cls in vars(spec_module).values()
        if isinstance(cls, type)
        and cls.__module__ == spec_module.__name__
        and dataclasses.is_dataclass(cls)
        and numeric_fields(cls)
    }
    assert with_numbers == set(TABLES)
    assert len(FIELDS) >= 17


def test_the_base_spec_is_valid() -> None:
    parse_spec(spec_with("", "", ""), source="fuzz.toml")


def test_every_numeric_field_has_a_documented_maximum() -> None:
    # epsilon has its own, clearer rule (0 < epsilon < 1).
    assert {key for _, key in FIELDS} - {"epsilon"} <= set(MAXIMUMS)


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize(("table", "key"), FIELDS, ids=[k for _, k in FIELDS])
def test_an_edge_value_parses_or_names_its_field_and_line(table: str, key: str, value: str) -> None:
    text = spec_with(table, key, value)
    try:
        parse_spec(text, source="fuzz.toml")
    except SpecError as exc:
        assert str(exc).startswith(f"fuzz.toml:{line_of(text, key)}: ") and key in str(exc), str(exc)
        return
    assert value not in ALWAYS_BAD, f"{key} = {value} was accepted"


def test_runs_times_max_samples_is_bounded() -> None:
    text = spec_with("[measure]", "runs", "100").replace(
        "runs = 100\n", "runs = 100\nmax_samples = 1000000\n"
    )
    with pytest.raises(SpecError, match=rf"max_samples.*above {MAX_POOLED_SAMPLES}") as raised:
        parse_spec(text, source="fuzz.toml")
    assert raised.value.line == line_of(text, "max_samples")


@pytest.mark.parametrize("value", CLI_EDGES)
@pytest.mark.parametrize(("table", "key"), FIELDS, ids=[k for _, k in FIELDS])
def test_the_dry_run_of_an_edge_value_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, key: str, value: str
) -> None:
    spec = tmp_path / "edge.toml"
    text = spec_with(table, key, value)
    spec.write_text(text)
    code = main(["sweep", str(spec), "--dry-run", "--db", str(tmp_path / "x.db")])
    err = capsys.readouterr().err
    if code == 0:
        assert value == "0", f"{key} = {value} was accepted"
        return
    assert code == 2
    assert f"{spec}:{line_of(text, key)}: " in err and key in err, err


AT_MAXIMUM = [(table, key) for table, key in FIELDS if key in MAXIMUMS]


@pytest.mark.parametrize(("table", "key"), AT_MAXIMUM, ids=[k for _, k in AT_MAXIMUM])
def test_the_dry_run_of_a_field_at_its_maximum_plans_or_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, key: str
) -> None:
    # The largest value in range must not overflow the plan's estimate or its formatting.
    spec = tmp_path / "max.toml"
    maximum = MAXIMUMS[key]
    text = spec_with(table, key, repr(int(maximum)) if maximum == int(maximum) else repr(maximum))
    spec.write_text(text)
    code = main(["sweep", str(spec), "--dry-run", "--db", str(tmp_path / "x.db")])
    out, err = capsys.readouterr()
    assert code in (0, 2), out + err
    if code == 2:  # in range alone, out of range with the other fields (e.g. above max_samples)
        assert key in err, err
    else:
        assert "wall" in out
