"""Every number of a sweep spec, at the edges: out of range is a spec error naming the field.

0, negative, 1e308, nan, inf and 2**63 for each numeric field: the spec either parses (a value in
its documented range) or raises SpecError naming the file, the line and the field; never another
exception. The dry run of a spec with a huge value exits 2 without a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleet_tui.config.spec import MAXIMUMS, SpecError, parse_spec

BASE = {
    "[[workload.bucket]]": {"budget_ms": "5.0"},
    "[measure]": {
        "runs": "2",
        "warmup_min": "2",
        "warmup_max": "20",
        "min_samples": "130",
        "max_samples": "5000",
        "check_every": "50",
        "min_duration_s": "1.0",
        "max_duration_s": "4.0",
        "epsilon": "0.05",
        "sustained_minutes": "0",
        "cooldown_s": "0.5",
        "wait_nominal_s": "10",
    },
    "[gates]": {"coreml_vs_mlx_p95": "1.25", "sustained_vs_burst": "1.2"},
    "[scheduler]": {"busy_wait_s": "60", "max_attempts": "3", "retry_backoff_s": "1"},
}
FIELDS = [(table, key) for table, keys in BASE.items() for key in keys]
EDGES = ["0", "-1", "-1e308", "1e308", "nan", "inf", "-inf", str(2**63), str(2**63 - 1), "1.5", "true", '"3"']
ALWAYS_BAD = {"-1", "-1e308", "1e308", "nan", "inf", "-inf", str(2**63), str(2**63 - 1), "true", '"3"'}


def spec_with(table: str, key: str, value: str) -> str:
    def block(name: str) -> str:
        return "\n".join(f"{k} = {value if (name, k) == (table, key) else v}" for k, v in BASE[name].items())

    return (
        'name = "fuzz"\n[targets]\nnodes = ["local"]\n[[workload]]\nname = "mlp"\n'
        f'  [[workload.bucket]]\n  name = "b1"\n  {block("[[workload.bucket]]")}\n'
        '[engines]\nnumpy = [{ dtype = "fp64" }]\n'
        f"[measure]\n{block('[measure]')}\n[gates]\n{block('[gates]')}\n[scheduler]\n{block('[scheduler]')}\n"
    )


def test_the_base_spec_is_valid() -> None:
    parse_spec(spec_with("", "", ""), source="fuzz.toml")


def test_every_numeric_field_has_a_documented_maximum() -> None:
    # epsilon has its own, clearer rule (0 < epsilon < 1).
    assert {key for _, key in FIELDS} - {"epsilon"} <= set(MAXIMUMS)


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize(("table", "key"), FIELDS, ids=[k for _, k in FIELDS])
def test_an_edge_value_parses_or_names_its_field(table: str, key: str, value: str) -> None:
    text = spec_with(table, key, value)
    try:
        parse_spec(text, source="fuzz.toml")
    except SpecError as exc:
        message = str(exc)
        assert message.startswith("fuzz.toml:") and key in message, message
        return
    assert value not in ALWAYS_BAD, f"{key} = {value} was accepted"


@pytest.mark.parametrize("field", ["sustained_minutes", "cooldown_s", "max_duration_s"])
def test_the_dry_run_of_a_huge_value_is_exit_2_without_a_traceback(tmp_path: Path, field: str) -> None:
    spec = tmp_path / "huge.toml"
    spec.write_text(spec_with("[measure]", field, "1e308"))
    result = subprocess.run(
        [sys.executable, "-m", "fleet_tui", "sweep", str(spec), "--dry-run", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert field in result.stderr and "Traceback" not in result.stderr
