"""Sweep spec parsing: shipped specs parse, every malformed spec gives one clear error naming
the file, the table/field and (where it can be found) the line; the contract hash is stable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from spec_fixtures import spec_toml

from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import SpecError, SweepSpec, load_spec, parse_spec
from node_agent.measure import MeasureSettings, SettingsError

ROOT = Path(__file__).resolve().parents[2]

BASE = spec_toml(
    "t",
    workloads=(("mlp", (("b1", 2.5), ("b8", 4))),),
    engines='numpy = [{ dtype = "fp64" }]\nmlx = [{ device = "cpu", dtype = "fp32" }]',
)


def _line_of(text: str) -> int:
    """The 1-based line of BASE that holds `text`."""
    return next(n for n, line in enumerate(BASE.splitlines(), 1) if text in line)


def _load(tmp_path: Path, text: str, name: str = "spec.toml") -> SweepSpec:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_spec(path)


def _error(tmp_path: Path, text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        _load(tmp_path, text, "bad.toml")
    message = str(info.value)
    assert str(tmp_path / "bad.toml") in message, message
    return info.value


@pytest.mark.parametrize("name", ["smoke", "acceptance"])
def test_shipped_specs_parse(name: str) -> None:
    spec = load_spec(ROOT / "specs" / f"{name}.toml")
    assert spec.name == name
    assert re.fullmatch(r"[0-9a-f]{64}", spec.contract_hash)
    assert spec.workloads and spec.engines
    assert all(b.budget_ms > 0 for w in spec.workloads for b in w.buckets)


def test_smoke_spec_is_small_and_acceptance_uses_the_real_defaults() -> None:
    smoke = load_spec(ROOT / "specs" / "smoke.toml")
    assert [w.name for w in smoke.workloads] == ["mlp", "minilm-l6"]
    assert {e.key for e in smoke.engines} == {"numpy:fp64", "mlx:cpu:fp32", "coreml:all:fp16"}
    assert smoke.measure.sustained_minutes == 0 and smoke.measure.max_duration_s <= 5
    acceptance = load_spec(ROOT / "specs" / "acceptance.toml")
    assert acceptance.measure.sustained_minutes == 15
    assert acceptance.measure.runs == 5 and acceptance.measure.min_samples == 130
    assert acceptance.gates.coreml_vs_mlx_p95 == 1.25 and acceptance.gates.sustained_vs_burst == 1.2


def test_a_valid_spec_becomes_typed_values(tmp_path: Path) -> None:
    spec = _load(tmp_path, BASE)
    assert [(b.name, b.budget_ms, dict(b.inputs)) for b in spec.workloads[0].buckets] == [
        ("b1", 2.5, {"x": [1, 256]}),
        ("b8", 4.0, {"x": [8, 256]}),
    ]
    assert [e.key for e in spec.engines] == ["numpy:fp64", "mlx:cpu:fp32"]
    assert spec.engines[1].config == {"device": "cpu", "dtype": "fp32"}
    assert spec.budgets() == {("mlp", "b1"): 2.5, ("mlp", "b8"): 4.0}
    assert spec.scheduler.max_attempts == 3 and spec.gates.budget is True


def test_engine_options_left_out_take_documented_defaults(tmp_path: Path) -> None:
    spec = _load(tmp_path, BASE.replace('numpy = [{ dtype = "fp64" }]', "numpy = [{}]\ncoreml = [{}]"))
    assert [e.key for e in spec.engines] == ["numpy:fp64", "coreml:all:fp16", "mlx:cpu:fp32"]


def test_measure_becomes_the_agent_job_measure_object(tmp_path: Path) -> None:
    spec = _load(tmp_path, BASE + "\n[measure]\nruns = 3\nsustained_minutes = 1.5\np99 = true\n")
    job = spec.measure.to_job()
    assert set(job) == {
        "runs", "warmup_min", "warmup_max", "min_samples", "min_duration_s", "max_duration_s",
        "max_samples", "epsilon", "check_every", "p99", "sustained_s", "cooldown_s",
        "wait_nominal_s", "numeric", "energy", "energy_interval_ms",
    }  # fmt: skip
    assert job["runs"] == 3 and job["sustained_s"] == 90.0 and job["p99"] is True


def test_ratio_gates_can_be_turned_off(tmp_path: Path) -> None:
    spec = _load(tmp_path, BASE + "\n[gates]\ncoreml_vs_mlx_p95 = false\nsustained_vs_burst = 1.1\n")
    assert spec.gates.coreml_vs_mlx_p95 is None and spec.gates.sustained_vs_burst == 1.1


# --- one clear error per malformed spec ---------------------------------------------------------


def test_unknown_workload_lists_the_known_ones(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE.replace('name = "mlp"', 'name = "mpl"'))
    assert "unknown workload 'mpl'" in str(err)
    assert "did you mean 'mlp'" in str(err)
    assert "convnet" in str(err) and "decoder-step" in str(err)
    assert err.line == _line_of('name = "mlp"')


def test_bucket_unknown_for_the_workload_lists_its_buckets(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE.replace('name = "b8"', 'name = "b9"'))
    assert "workload 'mlp' has no bucket 'b9'" in str(err)
    assert "b1, b8, b32" in str(err)
    assert err.line == _line_of('name = "b8"')


def test_bucket_without_budget_is_an_error_not_a_default(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE.replace("  budget_ms = 4\n", ""))
    assert "bucket 'b8'" in str(err) and "budget_ms is missing" in str(err)
    assert err.line == _line_of('name = "b8"')  # the line naming the bucket


@pytest.mark.parametrize(
    ("addition", "field", "fragment"),
    [
        ('\n[measure]\nruns = "5"\n', "[measure]", "runs must be an integer, not a string '5'"),
        ("\n[measure]\nruns = true\n", "[measure]", "runs must be an integer"),
        ("\n[measure]\nepsilon = 2\n", "[measure]", "0 < epsilon < 1"),
        ("\n[measure]\nwarmup_min = 50\nwarmup_max = 10\n", "[measure]", "warmup_min (50) is above"),
        ('\n[scheduler]\non_busy = "queue"\n', "[scheduler]", 'on_busy must be "wait" or "skip"'),
        ('\n[targets]\nnodes = "local"\n', "[targets]", "nodes must be a list of non-empty strings"),
        ("\n[measure]\ncooldown_s = -1\n", "[measure]", "cooldown_s must be >= 0, got -1"),
        ("\n[measure]\nmax_duration_s = 0\n", "[measure]", "max_duration_s must be > 0"),
        ("\n[scheduler]\nretry_backoff_s = -0.5\n", "[scheduler]", "retry_backoff_s must be >= 0"),
        # The agent refuses p99 below its 662-sample floor: caught here, not as bad_job per cell.
        ("\n[measure]\np99 = true\nmax_samples = 500\n", "[measure]", "max_samples (500) is below 662"),
    ],
)
def test_bad_types_and_values_name_the_field(
    tmp_path: Path, addition: str, field: str, fragment: str
) -> None:
    err = _error(tmp_path, BASE + addition)
    assert field in str(err) and fragment in str(err), str(err)
    assert err.line is not None and err.line > BASE.count("\n")


def test_bad_budget_type_names_the_bucket(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE.replace("budget_ms = 4", 'budget_ms = "4ms"'))
    assert "bucket 'b8'" in str(err) and "budget_ms must be a number" in str(err)


def test_unknown_key_suggests_the_close_one(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "\n[measure]\nwarmup_mn = 3\n")
    assert "unknown key 'warmup_mn'" in str(err) and "did you mean 'warmup_min'" in str(err)
    assert err.where == "[measure]" and err.line == BASE.count("\n") + 3


def test_unknown_top_level_table_is_reported(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "\n[gate]\nbudget = true\n")
    assert "unknown key 'gate'" in str(err) and "did you mean 'gates'" in str(err)


@pytest.mark.parametrize(
    ("engines", "fragment"),
    [
        ('mlx = [{ device = "npu" }]', "device = a string 'npu' is not valid for mlx (one of: gpu, cpu)"),
        ('coreml = [{ compute_units = "ane" }]', "one of: all, cpu_and_ne, cpu_and_gpu, cpu_only"),
        ('mlx = [{ device = "cpu", precision = "fp16" }]', "unknown key 'precision'"),
        ('tensorflow = [{ device = "cpu" }]', "unknown key 'tensorflow'"),
        ('mlx = { device = "cpu" }', "must be a list of inline tables"),
        ('mlx = [{ device = "cpu" }, { device = "cpu" }]', "'mlx:cpu:fp32' is listed twice"),
    ],
)
def test_bad_engine_configs(tmp_path: Path, engines: str, fragment: str) -> None:
    text = BASE.split("[engines]")[0] + "[engines]\n" + engines + "\n"
    err = _error(tmp_path, text)
    assert "[engines]" in str(err) and fragment in str(err), str(err)


@pytest.mark.parametrize(
    "text",
    [
        BASE.split("[engines]")[0] + "[engines]\nmlx = []\n",
        BASE.split("[engines]")[0],
        'name = "t"\n[engines]\nnumpy = [{}]\n',
    ],
)
def test_empty_matrix(tmp_path: Path, text: str) -> None:
    assert "empty matrix" in str(_error(tmp_path, text))


def test_workload_without_buckets_says_which_buckets_exist(tmp_path: Path) -> None:
    err = _error(tmp_path, 'name = "t"\n[[workload]]\nname = "convnet"\n[engines]\nnumpy = [{}]\n')
    assert "lists no buckets" in str(err) and "img64, img128" in str(err)


def test_duplicate_bucket_is_an_error(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE.replace('name = "b8"', 'name = "b1"'))
    assert "bucket 'b1' is listed twice" in str(err)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE.replace("budget_ms = 4", "budget_ms = = 4"))
    assert err.line == _line_of("budget_ms = 4")
    assert "TOML syntax" in str(err) and f"bad.toml:{err.line}:" in str(err)


def test_unreadable_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the spec"):
        load_spec(tmp_path / "missing.toml")


# --- the contract hash ----------------------------------------------------------------------------


REORDERED = """\
# Same contract, different order, formatting, comments, engines and measurement settings.
[engines]
coreml = [{precision="fp16", compute_units="all"}]

[measure]
runs = 9

[[workload]]
name = "mlp"
  [[workload.bucket]]
  budget_ms = 4.0     # int vs float does not matter
  name = "b8"
  [[workload.bucket]]
  budget_ms = 2.5
  name = "b1"
"""


def test_contract_hash_ignores_order_formatting_and_non_contract_settings() -> None:
    a, b = parse_spec(BASE), parse_spec(REORDERED)
    assert a.contract_hash == b.contract_hash
    assert a.contract() == b.contract()


def test_contract_hash_changes_with_a_budget_or_a_bucket() -> None:
    base = parse_spec(BASE).contract_hash
    assert parse_spec(BASE.replace("budget_ms = 4", "budget_ms = 4.5")).contract_hash != base
    assert parse_spec(BASE.replace('name = "b8"', 'name = "b32"')).contract_hash != base


def test_contract_hash_covers_the_workload_shapes() -> None:
    contract = parse_spec(BASE).contract()
    assert contract["workloads"][0]["buckets"][0] == {
        "name": "b1",
        "inputs": {"x": [1, 256]},
        "budget_ms": 2.5,
    }


# --- target selection ---------------------------------------------------------------------------

NODES = [
    Node(name="local", host="localhost", transport="local", tags=("local",)),
    Node(name="m4-a", host="m4-a.example", tags=("m4", "air")),
    Node(name="m2-pro", host="m2.example", tags=("m2",)),
]


def test_empty_targets_select_every_node() -> None:
    assert [n.name for n in parse_spec(BASE).select_nodes(NODES)] == ["local", "m4-a", "m2-pro"]


def test_targets_select_named_nodes_and_tagged_nodes_in_inventory_order() -> None:
    spec = parse_spec(BASE + '\n[targets]\nnodes = ["m2-pro"]\ntags = ["local"]\n')
    assert [n.name for n in spec.select_nodes(NODES)] == ["local", "m2-pro"]


@pytest.mark.parametrize(
    ("targets", "fragment"),
    [
        ('nodes = ["m4-b"]', "node 'm4-b' is not in the inventory (did you mean 'm4-a'?)"),
        ('tags = ["m5"]', "no node carries tag 'm5'"),
    ],
)
def test_targets_that_match_nothing_are_errors(targets: str, fragment: str) -> None:
    spec = parse_spec(BASE + f"\n[targets]\n{targets}\n", source="sweep.toml")
    with pytest.raises(SpecError, match=re.escape(fragment)):
        spec.select_nodes(NODES)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_a_spec_that_is_not_a_regular_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "spec.toml"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: a blocking read would wait forever
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path("/dev/zero")  # never ends
    with pytest.raises(SpecError, match="cannot read the spec: a .*, not a regular file") as raised:
        load_spec(path)
    assert str(raised.value).startswith(f"{path}: ")


@pytest.mark.timeout(30)
def test_sweep_with_a_fifo_spec_or_inventory_exits_2(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    good = tmp_path / "good.toml"
    good.write_text(spec_toml("good"))
    for argv in (
        ["sweep", str(fifo), "--dry-run"],
        ["sweep", str(good), "--dry-run", "--inventory", str(fifo)],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "fleet_tui", *argv, "--db", str(tmp_path / "x.db")],
            capture_output=True,
            text=True,
            timeout=25,
        )
        assert result.returncode == 2, result.stderr
        assert f"{fifo}: cannot read" in result.stderr and "FIFO" in result.stderr
        assert "Traceback" not in result.stderr


# --- energy -------------------------------------------------------------------------------------


def test_energy_is_off_unless_asked_and_reaches_the_job(tmp_path: Path) -> None:
    assert _load(tmp_path, BASE).measure.to_job()["energy"] == "off"
    spec = _load(tmp_path, BASE + '\n[measure]\nenergy = "macmon"\nenergy_interval_ms = 100\nkwh_usd = 0.3\n')
    job = spec.measure.to_job()
    assert job["energy"] == "macmon" and job["energy_interval_ms"] == 100
    assert "kwh_usd" not in job  # a controller-side price, never sent to a node
    assert spec.to_json()["measure"]["kwh_usd"] == 0.3
    MeasureSettings.from_dict(job)  # the agent accepts what the spec sends


@pytest.mark.parametrize(
    ("addition", "fragment"),
    [
        ('energy = "macmom"', "energy must be one of 'auto', 'off', 'ioreport'"),
        ("energy = true", "energy must be one of"),
        ("energy_interval_ms = 10", "energy_interval_ms must be >= 50, got 10"),
        ("kwh_usd = -1", "kwh_usd must be >= 0"),
    ],
)
def test_bad_energy_settings_name_file_line_and_field(tmp_path: Path, addition: str, fragment: str) -> None:
    err = _error(tmp_path, BASE + f"\n[measure]\n{addition}\n")
    assert fragment in str(err), str(err)
    assert err.where == "[measure]" and err.line == BASE.count("\n") + 3


def test_a_misspelt_reader_is_suggested(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + '\n[measure]\nenergy = "macmom"\n')
    assert "did you mean 'macmon'" in str(err)


def test_the_agent_refuses_an_unknown_reader_by_field() -> None:
    with pytest.raises(SettingsError, match=r"measure\.energy: must be one of"):
        MeasureSettings.from_dict({"energy": "watts"})
    with pytest.raises(SettingsError, match=r"measure\.energy: must be a string"):
        MeasureSettings.from_dict({"energy": 1})
