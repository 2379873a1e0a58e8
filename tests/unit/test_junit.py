"""JUnit XML of a stored run: a suite per node, cells and gate verdicts as test cases."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from spec_fixtures import linux_facts, spec_toml

from fleet_tui.analysis.gates import evaluate_gates
from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import parse_spec
from fleet_tui.export.junit import junit_for_run, write_junit
from fleet_tui.store import Store
from fleet_tui.sweep.plan import build_plan

SPEC = spec_toml(
    "junit-test", engines='numpy = [{}]\nmlx = [{ device = "cpu", dtype = "fp32" }]\ncoreml = [{}]'
)
NODES = [Node(name="linux", host="127.0.0.2"), Node(name="mac", host="mac.example")]
LINUX = linux_facts("numpy", "mlx", coreml="needs macOS")


def _stored_run(tmp_path: Path) -> tuple[Store, int]:
    spec = parse_spec(SPEC)
    store = Store.open(tmp_path / "fleet.db")
    run_id = store.create_run(spec)
    ids = store.add_cells(run_id, build_plan(spec, NODES, {"linux": LINUX}).cells)
    numpy_l, mlx_l, _coreml_l, numpy_m, mlx_m, coreml_m = ids
    store.add_result(numpy_l, {"p95": 1.5e6})
    store.mark_cell(mlx_l, "running", attempt_inc=True)
    store.mark_cell(mlx_l, "lost", reason="connection lost\x07 mid-cell")  # control char: must not break XML
    store.add_result(numpy_m, {"p95": 1.0e6})
    store.add_result(mlx_m, {"p95": 1.0e6})
    store.add_result(coreml_m, {"p95": 3.0e6})
    report = evaluate_gates(store.outcomes(run_id), spec.gates, spec.budgets())
    store.add_gate_verdicts(run_id, report.verdicts)
    return store, run_id


def test_junit_has_a_suite_per_node_with_cells_and_gates(tmp_path: Path) -> None:
    store, run_id = _stored_run(tmp_path)
    text = junit_for_run(store, run_id)
    root = ET.fromstring(text)  # valid XML, despite the control character in a reason
    assert text.startswith("<?xml")
    assert root.tag == "testsuites" and root.get("name") == f"junit-test#{run_id}"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["linux", "mac"]

    linux = {
        c.get("name"): c
        for c in suites["linux"].findall("testcase")
        if c.get("classname", "").endswith(".cells")
    }
    assert set(linux) == {"mlp/b1/numpy:fp64", "mlp/b1/mlx:cpu:fp32", "mlp/b1/coreml:all:fp16"}
    assert list(linux["mlp/b1/numpy:fp64"]) == []  # passed
    lost = linux["mlp/b1/mlx:cpu:fp32"].find("failure")
    assert (
        lost is not None and lost.get("type") == "lost" and "connection lost" in (lost.get("message") or "")
    )
    skipped = linux["mlp/b1/coreml:all:fp16"].find("skipped")
    assert skipped is not None and skipped.get("message") == "needs macOS"

    mac_gates = {
        c.get("name"): c
        for c in suites["mac"].findall("testcase")
        if c.get("classname", "").endswith(".gates")
    }
    regression = mac_gates["coreml_regression mlp/b1/coreml:all:fp16"].find("failure")
    assert regression is not None and "3.00x MLX mlx:cpu:fp32" in (regression.get("message") or "")
    budget = mac_gates["over_budget mlp/b1/coreml:all:fp16"].find("failure")
    assert budget is not None and "p95 3.000 ms > budget 2 ms" in (budget.text or "")
    passing = mac_gates["over_budget mlp/b1/numpy:fp64"]
    assert passing.find("failure") is None and "<= budget" in (passing.findtext("system-out") or "")

    # Counts agree with the cases, per suite and in total.
    for suite in suites.values():
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(cases)
        assert int(suite.get("failures", "-1")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(suite.get("skipped", "-1")) == sum(1 for c in cases if c.find("skipped") is not None)
    assert int(root.get("tests", "-1")) == sum(int(s.get("tests", "0")) for s in suites.values())
    assert int(root.get("failures", "-1")) == 3  # lost cell + 2 failing gates on the Mac
    store.close()


def test_unfinished_cells_are_errors_and_the_file_is_written(tmp_path: Path) -> None:
    spec = parse_spec(SPEC)
    with Store.open(tmp_path / "fleet.db") as store:
        run_id = store.create_run(spec)
        ids = store.add_cells(run_id, build_plan(spec, NODES[:1]).cells)
        store.mark_cell(ids[0], "pending", "interrupted during attempt 1 (its samples are kept)")
        text = junit_for_run(store, run_id)
    root = ET.fromstring(text)
    errors = root.findall(".//testcase/error")
    assert len(errors) == 3 and all("never finished" in (e.get("message") or "") for e in errors)
    assert "interrupted during attempt 1" in (errors[0].get("message") or "")
    assert root.get("errors") == "3"
    out = tmp_path / "junit.xml"
    write_junit(out, text)
    assert ET.parse(out).getroot().get("tests") == "3"


def test_an_inconclusive_gate_is_a_skipped_case_that_says_why(tmp_path: Path) -> None:
    from fleet_tui.model.gates import GateVerdict

    store, run_id = _stored_run(tmp_path)
    store.add_gate_verdicts(
        run_id,
        [
            GateVerdict(
                gate="thermal_drift",
                verdict="inconclusive",
                node="mac",
                workload="mlp",
                bucket="b1",
                cell_id=None,
                cell_key="mlp/b1/numpy:fp64",
                detail="ratio 1.19x [1.12, 1.27] straddles 1.2",
            )
        ],
    )
    root = ET.fromstring(junit_for_run(store, run_id))
    case = next(c for c in root.iter("testcase") if c.get("name") == "thermal_drift mlp/b1/numpy:fp64")
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("type") == "inconclusive"
    assert (skipped.get("message") or "").startswith("inconclusive: ratio 1.19x")
    assert case.find("failure") is None
    store.close()
