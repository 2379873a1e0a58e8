"""`fleet-tui compare | capex | baseline`: output, exit codes and every bad-input path (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from compare_fixture import build, facts, lognormal_runs

from fleet_tui.cli import main
from fleet_tui.config.inventory import Node
from fleet_tui.store import Store

NODES = (
    Node(name="a", host="127.0.0.2", tier="M2", hourly_usd=0.5, purchase_usd=1000.0),
    Node(name="b", host="127.0.0.3", tier="M4", hourly_usd=1.0, purchase_usd=2000.0),
)
FACTS = {"a": facts("a"), "b": facts("b", chip="Apple M4")}


def _samples(factor: dict[tuple[str, str], float], seed: int = 1) -> Any:
    rng = np.random.default_rng(seed)

    def samples(node: str, key: str) -> list[list[float]]:
        base = 2.0 if "/b1/" in key else 5.0
        return lognormal_runs(rng, base * factor.get((node, key.split("/")[1]), 1.0))

    return samples


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A store with run 1 (b 2.5 times as fast) and run 2 (the same, but a/b1 30% slower)."""
    path = tmp_path / "store.db"
    store, _ = build(path, NODES, _samples({("b", "b1"): 0.4, ("b", "b8"): 0.4}), node_facts=FACTS)
    build(
        path,
        NODES,
        _samples({("b", "b1"): 0.4, ("b", "b8"): 0.4, ("a", "b1"): 1.3}, 2),
        node_facts=FACTS,
        store=store,
    )
    build(path, NODES, _samples({("b", "b1"): 0.4, ("b", "b8"): 0.4}, 3), node_facts=FACTS, store=store)
    store.close()
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse refused an option (a number out of its range)
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_compare_one_run_prints_the_soc_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "compare", "1", "--db", str(db), "--baseline", "a")
    assert code == 0, err
    assert "SoC side by side: run 1 (p95, baseline a)" in out
    assert "mlp / b1 / numpy:fp64   (budget p95 10 ms)" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("b ") and "x (" in x)
    assert "faster" in line and "0.4" in line
    assert "a *" in out  # the baseline is marked


def test_compare_defaults_to_the_latest_run_and_other_metrics(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "compare", "--db", str(db))
    assert code == 0 and "run 3" in out
    code, out, _ = _run(capsys, "compare", "3", "--db", str(db), "--metric", "cold")
    assert code == 0 and "COLD ms" in out
    code, out, _ = _run(capsys, "compare", "3", "--db", str(db), "--metric", "cost")
    assert code == 0 and "$ PER MILLION" in out and "cheaper" in out  # b: 2x the price, 0.4x the time


def test_two_runs_compare_run_against_run(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "compare", "1", "2", "--db", str(db))
    assert code == 0, err  # a plain run-vs-run reports, it does not gate
    assert "Run 2 against run 1" in out
    rows = [x for x in out.splitlines() if x and not x.startswith(" ") and " / " in x]
    assert rows[0].startswith("a: mlp / b1")  # the regression first


def test_named_baseline_gates_on_a_significant_regression(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "baseline", "set", "nightly", "1", "--db", str(db))
    assert code == 0 and "nightly" in out
    code, out, _ = _run(capsys, "baseline", "list", "--db", str(db), "--json")
    assert code == 0 and [(b["name"], b["run_id"]) for b in json.loads(out)] == [("nightly", 1)]
    code, out, err = _run(capsys, "compare", "2", "--against", "nightly", "--db", str(db))
    assert code == 1, out + err
    assert "1 significant regression(s) against nightly" in err
    assert "baseline nightly (run 1)" in out
    code, out, err = _run(capsys, "compare", "3", "--against", "nightly", "--db", str(db))
    assert code == 0, out + err
    code, out, _ = _run(capsys, "baseline", "list", "--db", str(db))
    assert out.startswith("nightly  run 1")


def test_capex_prints_costs_and_a_recommendation(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "capex", "--db", str(db), "--utilisation", "0.25")
    assert code == 0, err
    assert "Cost and capex: run 3 (utilisation 0.25)" in out
    assert "Recommendations" in out and "mlp: M4 with numpy:fp64 meets every bucket's budget" in out
    assert "evidence:" in out and "would change it:" in out


def test_export_formats_go_through_the_registry(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "table.json"
    code, _, err = _run(capsys, "compare", "1", "--db", str(db), "--format", "json", "--output", str(target))
    assert code == 0, err
    assert json.loads(target.read_text())  # the export's own schema is the export's tests' business
    code, _, err = _run(capsys, "compare", "1", "--db", str(db), "--format", "nope")
    assert code == 2 and "unknown" in err and "format" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "99"], "no run 99"),
        (["compare", "x1"], "argument RUN: invalid run id"),
        (["compare", str(2**63)], "argument RUN: invalid run id"),
        (["baseline", "set", "n", str(2**63)], f"'{2**63}' is not a run id"),
        (["compare", "1", "1"], "given twice"),
        (["compare", "--against", "missing"], "no baseline named 'missing'"),
        (["compare", "1", "--baseline", "zz"], "neither a node nor a chip"),
        (["compare", "1", "--min-effect", "2"], "argument --min-effect: invalid fraction in [0, 1)"),
        (["capex", "42"], "no run 42"),
        (["capex", "--utilisation", "0"], "argument --utilisation: invalid fraction of hours in (0, 1]"),
        (["baseline", "set", "n", "42"], "no run 42"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *args, "--db", str(db))
    assert code == 2, out + err
    assert message in err
    assert "Traceback" not in err


def test_no_store_and_a_store_without_runs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.db"
    code, _, err = _run(capsys, "compare", "--db", str(missing))
    assert code == 2 and "no store at" in err and not missing.exists()
    Store.open(tmp_path / "empty.db").close()
    for command in ("compare", "capex"):
        code, _, err = _run(capsys, command, "--db", str(tmp_path / "empty.db"))
        assert code == 2 and "no runs in" in err, err


def test_a_run_with_no_comparable_cells_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, run = build(tmp_path / "s.db", NODES, lambda node, key: None, node_facts=FACTS)
    store.close()
    code, _, err = _run(capsys, "compare", str(run), "--db", str(tmp_path / "s.db"))
    assert code == 2 and "no measured cells" in err


def test_node_text_is_printed_without_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = {"a": facts("a", chip="Apple\x1b[2J M2\x07"), "b": facts("b")}
    store, run = build(tmp_path / "s.db", NODES, _samples({}), node_facts=evil)
    store.close()
    code, out, _ = _run(capsys, "compare", str(run), "--db", str(tmp_path / "s.db"))
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "Apple\\x1b[2J M2\\x07" in out
    for fmt in ("md", "html"):
        code, out, _ = _run(capsys, "compare", str(run), "--db", str(tmp_path / "s.db"), "--format", fmt)
        assert code == 0
        assert "\x1b" not in out and "\x07" not in out, fmt
        assert "x1b[2J M2" in out, fmt


def test_capex_with_an_unsupported_cell_prints_its_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An unsupported cell has fewer figures than the capex header: the table must still print.
    path = tmp_path / "store.db"
    engines = 'numpy = [{ dtype = "fp64" }]\ncoreml = [{ compute_units = "all", precision = "fp16" }]'
    measured = _samples({})

    def samples(node: str, key: str) -> Any:
        return None if "coreml" in key else measured(node, key)  # None: the cell is unsupported

    store, run_id = build(path, NODES, samples, node_facts=FACTS, engines=engines)
    store.close()
    code, out, err = _run(capsys, "capex", str(run_id), "--db", str(path))
    assert code == 0, err
    assert "unsupported" in out and "Recommendations" in out
