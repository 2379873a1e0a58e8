"""The SQLite store: creation (0600, WAL), migrations from empty and from v1, sample
round-trips, cell bookkeeping for resume, commit-per-batch durability and readers during writes."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from spec_fixtures import spec_toml

from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import SweepSpec, parse_spec
from fleet_tui.model.gates import GateVerdict
from fleet_tui.paths import default_db_path, resolve_db_path
from fleet_tui.store import MIGRATIONS, SCHEMA_VERSION, Store, StoreError
from fleet_tui.sweep.plan import build_plan

ROOT = Path(__file__).resolve().parents[2]

SPEC_TEXT = spec_toml(
    "store-test",
    engines='numpy = [{}]\nmlx = [{ device = "cpu", dtype = "fp32" }]',
    sections={"scheduler": "max_attempts = 2"},
)
NODES = [Node(name="a", host="127.0.0.2"), Node(name="b", host="127.0.0.3", tags=("m4",))]


@pytest.fixture
def spec() -> SweepSpec:
    return parse_spec(SPEC_TEXT, source="store-test.toml")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "fleet.db")


def _run_with_cells(store: Store, spec: SweepSpec) -> tuple[int, list[int]]:
    run_id = store.create_run(spec, versions={"agent": "abc123"})
    return run_id, store.add_cells(run_id, build_plan(spec, NODES).cells)


# --- paths ----------------------------------------------------------------------------------------


def test_default_db_path_precedence(tmp_path: Path) -> None:
    assert (
        default_db_path({"FLEET_TUI_DB": str(tmp_path / "x.db"), "XDG_DATA_HOME": "/d"}) == tmp_path / "x.db"
    )
    assert default_db_path({"XDG_DATA_HOME": "/data"}) == Path("/data/fleet-tui/fleet.db")
    # A relative XDG_DATA_HOME is invalid per the XDG spec and ignored.
    assert default_db_path({"XDG_DATA_HOME": "rel"}) == Path.home() / ".local/share/fleet-tui/fleet.db"
    assert default_db_path({}) == Path.home() / ".local/share/fleet-tui/fleet.db"
    assert resolve_db_path(str(tmp_path / "y.db"), {"FLEET_TUI_DB": "/z.db"}) == tmp_path / "y.db"


# --- creation and migrations ----------------------------------------------------------------------


def test_new_store_is_private_wal_with_foreign_keys_and_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "fleet.db"
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conn.close()
        assert {
            "nodes",
            "probes",
            "artifacts",
            "runs",
            "cells",
            "results",
            "samples",
            "thermal",
            "gates",
        } <= tables
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            store._conn.execute(
                "INSERT INTO results (cell_id, status, summary, created_at) VALUES (999, 'ok', '{}', '')"
            )


def test_store_opened_through_fleet_tui_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_TUI_DB", str(tmp_path / "env.db"))
    with Store.open() as store:
        assert store.path == tmp_path / "env.db"
    assert (tmp_path / "env.db").exists()


def test_migrating_a_v1_database_keeps_its_data(tmp_path: Path, spec: SweepSpec) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO runs (id, name, spec_toml, spec_json, contract_hash, status, started_at) "
        "VALUES (7, 'old', 'x', '{}', 'h', 'complete', '2025-01-01T00:00:00+00:00')"
    )
    conn.execute(
        "INSERT INTO cells (id, run_id, node, workload, bucket, engine, config, key, state) "
        "VALUES (70, 7, 'a', 'mlp', 'b1', 'numpy', '{}', 'mlp/b1/numpy:fp64', 'done')"
    )
    conn.execute(
        "INSERT INTO samples (cell_id, attempt, run_idx, phase, batch_seq, count, ns, t_ns) "
        "VALUES (70, 0, 0, 'measure', 0, 2, ?, x'')",
        (struct.pack("<2q", 1500, 1600),),
    )
    conn.close()

    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        old = store.run(7)
        assert (old.name, old.status, old.exit_code) == ("old", "complete", None)
        assert store.samples(70) == [1500, 1600]
        # The tables migration 2 added work on the migrated file.
        store.add_thermal(7, "a", 123, {"thermal_pressure": "nominal"}, cell_id=70)
        store.add_gate_verdicts(
            7, [GateVerdict("over_budget", "pass", "a", "mlp", "b1", 70, "k", "fine", 1.0, 2.0)]
        )
        store.set_run_status(7, "complete", exit_code=0)
        assert store.list_runs()[0].gates == {"pass": 1, "fail": 0, "inconclusive": 0, "skipped": 0}
        assert store.run(7).exit_code == 0


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this fleet-tui"):
        Store.open(path)


def test_a_file_that_is_not_sqlite_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database at all, but long enough to have a header " * 10)
    with pytest.raises(StoreError, match="not a usable fleet-tui store"):
        Store.open(path)


def test_a_db_folder_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # Works even as root (a permission-based test would not): a file blocks the folder.
    with pytest.raises(StoreError, match=r"cannot create its folder .*a-file"):
        Store.open(blocker / "sub" / "fleet.db")


# --- runs and cells -------------------------------------------------------------------------------


def test_run_round_trip(store: Store, spec: SweepSpec) -> None:
    run_id = store.create_run(spec, versions={"mlx": "0.32.4"})
    run = store.run(run_id)
    assert run.name == "store-test" and run.status == "running" and run.finished_at is None
    assert run.spec_toml == SPEC_TEXT and run.contract_hash == spec.contract_hash
    assert run.spec["scheduler"]["max_attempts"] == 2 and run.versions == {"mlx": "0.32.4"}
    store.set_run_status(run_id, "incomplete", exit_code=3)
    run = store.run(run_id)
    assert run.status == "incomplete" and run.exit_code == 3 and run.finished_at is not None
    with pytest.raises(StoreError, match="invalid run status"):
        store.set_run_status(run_id, "exploded")
    with pytest.raises(StoreError, match="no run 999"):
        store.run(999)


def test_cells_keep_plan_order_state_and_reason(store: Store, spec: SweepSpec) -> None:
    facts = {"a": {"os": "linux", "engines": {"numpy": "available", "mlx": "mlx is not installed"}}}
    run_id = store.create_run(spec)
    ids = store.add_cells(run_id, build_plan(spec, NODES, facts).cells)
    cells = store.cells_for(run_id)
    assert [c.id for c in cells] == ids
    assert [(c.node, c.key, c.state) for c in cells] == [
        ("a", "mlp/b1/numpy:fp64", "pending"),
        ("a", "mlp/b1/mlx:cpu:fp32", "unsupported"),
        ("b", "mlp/b1/numpy:fp64", "pending"),
        ("b", "mlp/b1/mlx:cpu:fp32", "pending"),
    ]
    assert cells[1].reason == "mlx is not installed" and cells[1].finished_at is not None
    assert [c.id for c in store.cells_for(run_id, states=["unsupported"])] == [ids[1]]
    assert [c.key for c in store.cells_for(run_id, node="b")] == ["mlp/b1/numpy:fp64", "mlp/b1/mlx:cpu:fp32"]
    assert cells[3].job_cell() == {
        "cell_id": str(ids[3]), "workload": "mlp", "bucket": "b1", "engine": "mlx",
        "config": {"device": "cpu", "dtype": "fp32"},
    }  # fmt: skip


def test_mark_cell_tracks_attempts_and_times(store: Store, spec: SweepSpec) -> None:
    _, ids = _run_with_cells(store, spec)
    store.mark_cell(ids[0], "running", attempt_inc=True)
    cell = store.cell(ids[0])
    assert (cell.state, cell.attempts, cell.finished_at) == ("running", 1, None) and cell.started_at
    store.mark_cell(ids[0], "lost", reason="node a: connection lost")
    cell = store.cell(ids[0])
    assert (cell.state, cell.attempts, cell.reason) == (
        "lost",
        1,
        "node a: connection lost",
    ) and cell.finished_at
    with pytest.raises(StoreError, match="invalid cell state 'broken'"):
        store.mark_cell(ids[0], "broken")
    with pytest.raises(StoreError, match="no cell 12345"):
        store.mark_cell(12345, "done")


def test_unfinished_cells_is_what_resume_reruns(store: Store, spec: SweepSpec) -> None:
    run_id = store.create_run(spec)
    # Four nodes x two engines = eight cells, one per situation below.
    nodes = [*NODES, Node(name="c", host="h"), Node(name="d", host="h2")]
    ids = store.add_cells(run_id, build_plan(spec, nodes).cells)
    pending, running, lost, failed_retry, failed_spent, done, unsupported, _ = ids
    store.mark_cell(running, "running", attempt_inc=True)
    store.mark_cell(lost, "running", attempt_inc=True)
    store.mark_cell(lost, "lost")
    store.mark_cell(failed_retry, "running", attempt_inc=True)
    store.add_result(failed_retry, {}, status="failed", reason="engine raised")
    for _ in range(2):  # max_attempts = 2 in the spec
        store.mark_cell(failed_spent, "running", attempt_inc=True)
    store.add_result(failed_spent, {}, status="failed", reason="engine raised again")
    store.add_result(done, {"p95": 1.0})
    store.add_result(unsupported, None, status="unsupported", reason="no Metal")
    unfinished = {c.id for c in store.unfinished_cells(run_id)}
    assert {pending, running, lost, failed_retry} <= unfinished
    assert not {failed_spent, done, unsupported} & unfinished
    # An explicit limit overrides the spec's.
    assert failed_spent in {c.id for c in store.unfinished_cells(run_id, max_attempts=3)}


def test_result_sets_the_cell_state_atomically(store: Store, spec: SweepSpec) -> None:
    _, ids = _run_with_cells(store, spec)
    summary = {"n": 130, "p50": 1_000_000, "p95": 1_200_000, "ci95": {"p95": [1_100_000, 1_300_000]}}
    store.add_result(ids[0], summary)
    assert store.result(ids[0]) == summary and store.cell(ids[0]).state == "done"
    store.add_result(ids[1], {}, status="unsupported", reason="Core ML needs macOS")
    assert (store.cell(ids[1]).state, store.cell(ids[1]).reason) == ("unsupported", "Core ML needs macOS")
    assert store.result(ids[2]) is None
    with pytest.raises(StoreError, match="invalid result status"):
        store.add_result(ids[2], {}, status="meh")
    with pytest.raises(ValueError):  # NaN is not JSON: refused, not stored as garbage
        store.add_result(ids[2], {"p95": float("nan")})
    assert store.cell(ids[2]).state == "pending"  # the failed write changed nothing


# --- samples --------------------------------------------------------------------------------------


def test_samples_round_trip_in_order_per_phase(store: Store, spec: SweepSpec) -> None:
    _, ids = _run_with_cells(store, spec)
    cell = ids[0]
    assert store.add_samples(cell, 0, "warmup", [9_000_000, 8_000_000], [0, 9_000_000]) == 0
    big = [1, 2**62, 1_234_567, 0]
    assert store.add_samples(cell, 0, "measure", big, [10, 20, 30, 40]) == 1
    assert store.add_samples(cell, 1, "measure", [5, 6], []) == 2
    store.add_samples(cell, 1, "sustained", [7], [99])
    assert store.samples(cell) == [*big, 5, 6]
    assert store.samples(cell, phase="warmup") == [9_000_000, 8_000_000]
    assert store.samples(cell, phase=None) == [9_000_000, 8_000_000, *big, 5, 6, 7]
    assert store.samples(cell, run_idx=1) == [5, 6]
    assert store.sample_count(cell) == 6 and store.sample_count(cell, phase=None) == 9
    batches = store.sample_batches(cell, phase="measure")
    assert [(b.run_idx, b.batch_seq, b.t_ns) for b in batches] == [(0, 1, [10, 20, 30, 40]), (1, 2, [])]
    assert store.samples(ids[1]) == []


def test_sample_blobs_are_little_endian_int64(store: Store, spec: SweepSpec) -> None:
    _, ids = _run_with_cells(store, spec)
    store.add_samples(ids[0], 0, "measure", [1, 258, 2**40], [3, 4, 5])
    conn = sqlite3.connect(store.path)
    ns, t_ns, count = conn.execute("SELECT ns, t_ns, count FROM samples").fetchone()
    conn.close()
    assert ns == struct.pack("<3q", 1, 258, 2**40) and t_ns == struct.pack("<3q", 3, 4, 5) and count == 3


def test_bad_sample_batches_are_refused(store: Store, spec: SweepSpec) -> None:
    _, ids = _run_with_cells(store, spec)
    with pytest.raises(StoreError, match="2 samples but 1 timestamps"):
        store.add_samples(ids[0], 0, "measure", [1, 2], [1])
    with pytest.raises(StoreError, match="invalid sample phase"):
        store.add_samples(ids[0], 0, "cooldown", [1], [1])
    with pytest.raises(StoreError, match="no cell 424242"):
        store.add_samples(424242, 0, "measure", [1], [1])


def test_a_retried_cell_shows_only_its_current_attempt(store: Store, spec: SweepSpec) -> None:
    _, ids = _run_with_cells(store, spec)
    cell = ids[0]
    store.mark_cell(cell, "running", attempt_inc=True)
    store.add_samples(cell, 0, "measure", [111, 112], [])
    store.mark_cell(cell, "lost", reason="sshd killed")
    store.mark_cell(cell, "running", attempt_inc=True)
    assert store.samples(cell) == []  # nothing of the lost attempt leaks into the new one
    store.add_samples(cell, 0, "measure", [221], [])
    assert store.samples(cell) == [221]
    assert [b.ns for b in store.sample_batches(cell, attempt=1)] == [[111, 112]]


def test_every_batch_is_committed_before_add_samples_returns(tmp_path: Path, spec: SweepSpec) -> None:
    """A writer process that dies hard (no close, no cleanup) loses nothing it had stored."""
    path = tmp_path / "crash.db"
    with Store.open(path) as store:
        run_id, ids = _run_with_cells(store, spec)
    script = textwrap.dedent(
        f"""
        import os
        from fleet_tui.store import Store
        store = Store.open({str(path)!r})
        for seq in range(25):
            store.add_samples({ids[0]}, 0, "measure", list(range(seq * 100, seq * 100 + 100)), [])
        os._exit(1)   # a crash: no close, no checkpoint, no atexit
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    with Store.open(path) as store:
        assert store.samples(ids[0]) == list(range(2500))
        assert store.run(run_id).status == "running"  # what `sweep --resume` will find


def test_a_reader_reads_while_a_writer_writes(tmp_path: Path, spec: SweepSpec) -> None:
    path = tmp_path / "busy.db"
    with Store.open(path) as store:
        run_id, ids = _run_with_cells(store, spec)
    batches, batch = 150, list(range(500))
    seen: list[int] = []
    errors: list[BaseException] = []
    reader_ready, writer_done = threading.Event(), threading.Event()

    def write() -> None:
        try:
            reader_ready.wait(timeout=30)
            with Store.open(path) as writer:
                for _ in range(batches):
                    writer.add_samples(ids[0], 0, "measure", batch, batch)
                    time.sleep(0.001)  # a sweep's pace, so reads interleave with writes
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            writer_done.set()

    def read() -> None:
        try:
            with Store.open(path) as reader:
                reader_ready.set()
                while not writer_done.is_set():
                    seen.append(reader.sample_count(ids[0]))
                    reader.list_runs()
                    reader.cells_for(run_id)
                seen.append(reader.sample_count(ids[0]))
        except BaseException as exc:
            errors.append(exc)
        finally:
            reader_ready.set()

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert seen == sorted(seen), "a reader must never see samples disappear"
    assert seen[-1] == batches * len(batch)
    total = batches * len(batch)
    assert any(0 < count < total for count in seen), "the reader should see the sweep in progress"


# --- probes, nodes, artifacts, thermal, gates, run list -----------------------------------------


def test_probes_nodes_and_artifacts(store: Store, spec: SweepSpec) -> None:
    store.upsert_nodes(NODES)
    store.upsert_nodes([Node(name="a", host="10.0.0.9", tier="M2 Pro", hourly_usd=0.9)])
    assert [(n["name"], n["host"], n["tier"], n["tags"]) for n in store.nodes()] == [
        ("a", "10.0.0.9", "M2 Pro", []),
        ("b", "127.0.0.3", None, ["m4"]),
    ]
    run_id = store.create_run(spec)
    store.add_probe(
        "a", {"os": "linux", "n": 1}, phase="start", run_id=run_id, taken_at="2025-01-01T00:00:00+00:00"
    )
    store.add_probe(
        "a", {"os": "linux", "n": 2}, phase="end", run_id=run_id, taken_at="2025-01-01T01:00:00+00:00"
    )
    store.add_probe("b", {"os": "macos"})
    assert store.latest_facts() == {"a": {"os": "linux", "n": 2}, "b": {"os": "macos"}}
    assert store.latest_facts(["b"]) == {"b": {"os": "macos"}}
    assert [(p["phase"], p["facts"]["n"]) for p in store.probes(run_id)] == [("start", 1), ("end", 2)]
    with pytest.raises(StoreError, match="invalid probe phase"):
        store.add_probe("a", {}, phase="middle")
    store.add_artifact("sha-1", "mlp", {"files": {"weights.npz": "ab"}})
    store.add_artifact("sha-1", "mlp", {"files": {"other": "cd"}})  # content-addressed: first wins
    assert store.artifact("sha-1") == {"files": {"weights.npz": "ab"}} and store.artifact("nope") is None


@pytest.mark.parametrize(
    "query",
    [
        "SELECT node, phase, taken_at, facts FROM probes WHERE run_id = 1 ORDER BY id",
        "SELECT id FROM cells WHERE run_id = 1 AND state IN ('pending') ORDER BY id",
        "SELECT ns FROM samples WHERE cell_id = 1 AND attempt = 1 ORDER BY batch_seq",
        "SELECT node, t_ns FROM thermal WHERE run_id = 1 ORDER BY node, t_ns, id",
        "SELECT gate FROM gates WHERE run_id = 1 ORDER BY id",
    ],
)
def test_per_run_and_per_cell_reads_use_an_index(store: Store, query: str) -> None:
    """A store holding many runs must not scan every row to read one run or cell."""
    plan = [row[-1] for row in store._conn.execute("EXPLAIN QUERY PLAN " + query)]
    assert plan and all(re.match(r"SEARCH \w+ USING ", step) for step in plan if "B-TREE" not in step), plan


def test_thermal_timeline(store: Store, spec: SweepSpec) -> None:
    run_id, ids = _run_with_cells(store, spec)
    store.add_thermal(run_id, "b", 200, {"thermal_pressure": "moderate"}, cell_id=ids[2])
    store.add_thermal(run_id, "a", 100, {"thermal_pressure": "nominal"})
    store.add_thermal(run_id, "b", 100, {"thermal_pressure": "nominal"})
    points = store.thermal(run_id)
    assert [(p.node, p.t_ns, p.state["thermal_pressure"]) for p in points] == [
        ("a", 100, "nominal"), ("b", 100, "nominal"), ("b", 200, "moderate"),
    ]  # fmt: skip
    assert [p.cell_id for p in store.thermal(run_id, node="b")] == [None, ids[2]]


def test_list_runs_summarises_cells_and_gates_newest_first(store: Store, spec: SweepSpec) -> None:
    first, first_ids = _run_with_cells(store, spec)
    second, second_ids = _run_with_cells(store, spec)
    store.add_result(first_ids[0], {"p95": 1})
    verdicts = [
        GateVerdict(
            "over_budget",
            "fail",
            "a",
            "mlp",
            "b1",
            first_ids[0],
            "mlp/b1/numpy:fp64",
            "p95 3 ms > 2 ms",
            3,
            2,
        ),
        GateVerdict(
            "thermal_drift", "skipped", "a", "mlp", "b1", first_ids[0], "mlp/b1/numpy:fp64", "no sustained"
        ),
    ]
    store.add_gate_verdicts(first, verdicts)
    store.add_gate_verdicts(first, verdicts)  # re-evaluation replaces, never duplicates
    store.set_run_status(first, "complete", exit_code=1)
    runs = store.list_runs()
    assert [r.id for r in runs] == [second, first]
    old = runs[1]
    assert old.cells == {"done": 1, "pending": 3} and old.nodes == ("a", "b")
    assert old.gates == {"pass": 0, "fail": 1, "inconclusive": 0, "skipped": 1} and old.gates_passed is False
    assert runs[0].gates_passed is None and runs[0].status == "running"
    assert old.to_json()["id"] == first and old.to_json()["gates_passed"] is False
    assert store.gate_verdicts(first) == verdicts
    assert len(second_ids) == 4


def test_outcomes_join_cells_and_results(store: Store, spec: SweepSpec) -> None:
    run_id, ids = _run_with_cells(store, spec)
    store.add_result(ids[1], {"p95": 2_000_000})
    outcomes = store.outcomes(run_id)
    assert [o.cell_id for o in outcomes] == ids
    assert outcomes[1].summary == {"p95": 2_000_000} and outcomes[1].state == "done"
    assert outcomes[1].config == {"device": "cpu", "dtype": "fp32"} and outcomes[0].summary is None


def test_the_store_folders_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with Store.open(tmp_path / "a" / "b" / "fleet.db"):
            pass
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((tmp_path / "a" / "b" / "fleet.db").stat().st_mode) == 0o600


def test_a_result_with_energy_fills_the_energy_table(store: Store, spec: SweepSpec) -> None:
    run_id, ids = _run_with_cells(store, spec)
    energy = {
        "status": "ok",
        "reader": {"name": "macmon", "version": "0.6.1", "interval_ms": 100},
        "window": "measure",
        "n_runs": 2,
        "j_per_inference": {"soc": {"estimate": 0.5, "lo": 0.4, "hi": 0.6}, "system": {"estimate": 2.0}},
        "avg_watts": {"soc": 8.0, "system": 18.0},
        "idle_watts": {"soc": 0.6},
        "thermal_state": "nominal",
        "power_source": "ac",
    }
    store.add_result(ids[0], {"p95": 1.0, "energy": energy})
    store.add_result(ids[1], {"p95": 1.0})  # no energy measured: no row
    [row] = store.energy(run_id)
    assert row["cell_id"] == ids[0] and row["reader"] == "macmon" and row["reader_version"] == "0.6.1"
    assert (row["j_per_inf_soc"], row["j_per_inf_soc_lo"], row["j_per_inf_soc_hi"]) == (0.5, 0.4, 0.6)
    assert row["j_per_inf_system"] == 2.0 and row["j_per_inf_system_lo"] is None
    assert (row["watts_soc"], row["watts_system"], row["idle_watts_system"]) == (8.0, 18.0, None)
    assert row["detail"] == energy


def test_nodes_keep_their_electricity_price(store: Store) -> None:
    store.upsert_nodes([Node(name="a", host="h", kwh_usd=0.31), Node(name="b", host="h")])
    prices = {n["name"]: n["kwh_usd"] for n in store.nodes()}
    assert prices == {"a": 0.31, "b": None}
