"""The acceptance bundle end to end: written from a real store, verified, tampered with (one
changed byte in every file, an edited sample, missing / extra / unsafe files), imported into an
empty store and compared; and the CLI's exit codes (0 ok, 1 tamper, 2 unreadable input)."""

from __future__ import annotations

import functools
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import export_fixture
import pytest

from fleet_tui.cli.exports import bundle_exports, table_for_run
from fleet_tui.export import bundle, render
from fleet_tui.export.bundle import SUMS, Bundle, import_bundle, read_bundle, sums_text, verify
from fleet_tui.model.gates import GateVerdict
from fleet_tui.store import Store

SMALL = {"nodes": export_fixture.NODES[:2], "runs": 2, "samples_per_run": 140, "sustained_samples": 150}


def _files(db: Path) -> dict[str, bytes]:
    fx = export_fixture.build(db, **SMALL)  # type: ignore[arg-type]
    with fx.store:
        return bundle.collect(fx.store, fx.run_id, bundle_exports(fx.store, fx.run_id))


@functools.cache
def small_bundle() -> dict[str, bytes]:
    """The files of a small run's bundle (built once; also names the tamper test's parameters)."""
    with tempfile.TemporaryDirectory() as tmp:
        return _files(Path(tmp) / "fleet.db")


def _write(tmp_path: Path, files: dict[str, bytes], name: str = "bundle") -> Path:
    return bundle.write(files, tmp_path / name)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet_tui", *args], capture_output=True, text=True, timeout=120
    )


def test_fresh_bundle_verifies_as_folder_and_tarball_and_is_reproducible(tmp_path: Path) -> None:
    files = small_bundle()
    folder = _write(tmp_path, files)
    report = verify(folder)
    assert report.ok, report.problems
    cells = json.loads(files["cells.json"])
    assert report.cells_checked == sum(1 for c in cells if c["state"] == "done") > 0
    assert report.verdicts_checked == len(json.loads(files["gates.json"])) > 0
    first, second = tmp_path / "a" / "run.tar.gz", tmp_path / "b" / "run.tar.gz"
    fx = export_fixture.build(tmp_path / "again.db", **SMALL)  # type: ignore[arg-type]
    with fx.store:
        bundle.write(bundle.collect(fx.store, fx.run_id, bundle_exports(fx.store, fx.run_id)), first)
        bundle.write(bundle.collect(fx.store, fx.run_id, bundle_exports(fx.store, fx.run_id)), second)
    assert first.read_bytes() == second.read_bytes(), "the same run must give a byte-identical tarball"
    assert verify(first).ok
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members if m.isfile()] == sorted(f"run/{p}" for p in files)
    assert {(m.uid, m.gid, m.uname, m.mtime) for m in members} == {(0, 0, "", members[0].mtime)}
    # sha256sum reads our SHA256SUMS as is.
    checked = subprocess.run(["sha256sum", "--quiet", "-c", SUMS], cwd=folder, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_layout_holds_everything_the_run_measured() -> None:
    files = small_bundle()
    for name in (
        "bundle.json",
        "spec/spec.toml",
        "spec/spec.json",
        "spec/contract.json",
        "nodes.json",
        "facts.json",
        "artifacts.json",
        "cells.json",
        "summaries.json",
        "gates.json",
        "thermal.json",
        "exports/table.csv",
        "exports/table.md",
        "exports/table.json",
        "exports/report.html",
        SUMS,
    ):
        assert name in files, name
    assert any(p.startswith("charts/") and p.endswith(".svg") for p in files)
    manifest = json.loads(files["bundle.json"])
    samples = sum(len(v) // 8 for p, v in files.items() if p.endswith(".ns"))
    assert manifest["counts"]["samples"] == samples
    assert json.loads(files["artifacts.json"])["a" * 16]["manifest"]["workload"] == "mlp"
    assert {p["phase"] for p in json.loads(files["facts.json"])} == {"start", "end"}
    contract = json.loads(files["spec/contract.json"])
    assert contract["contract_hash"] == manifest["run"]["contract_hash"]


@pytest.mark.parametrize("name", sorted(small_bundle()))
def test_one_changed_byte_in_any_file_fails_verify_naming_it(tmp_path: Path, name: str) -> None:
    files = dict(small_bundle())
    data = bytearray(files[name])
    if not data:
        pytest.skip(f"{name} is empty: there is no byte to change")
    data[len(data) // 2] ^= 0x01
    files[name] = bytes(data)
    report = verify(_write(tmp_path, files))
    assert not report.ok
    if name == SUMS:
        # A changed digest (or a broken line) names the file it was about.
        assert any(p.kind in ("changed", "unreadable", "missing", "extra") for p in report.problems)
    else:
        assert any(p.kind == "changed" and p.where == name for p in report.problems), report.problems


def _sample_file(files: dict[str, bytes]) -> tuple[str, dict[str, object]]:
    cells = json.loads(files["cells.json"])
    cell = next(c for c in cells if c["state"] == "done" and c["node"] == "m2pro-a")
    entry = next(e for e in cell["samples"] if e["phase"] == "measure" and e["run"] == 1)
    return entry["ns"], cell


def test_edited_sample_with_forged_sums_is_caught_by_the_recomputation(tmp_path: Path) -> None:
    files = dict(small_bundle())
    path, cell = _sample_file(files)
    values = bundle.unpack_le(files[path], path)
    values[max(range(len(values)), key=values.__getitem__)] *= 3  # the slowest sample, tripled
    files[path] = bundle.pack_le(values)
    files[SUMS] = sums_text(files)  # a careful forger fixes the hashes too
    report = verify(_write(tmp_path, files))
    assert not report.ok
    assert not [p for p in report.problems if p.kind in ("changed", "missing", "extra")]
    where = f"{cell['node']} {cell['key']}"
    summary_problems = [p for p in report.problems if p.kind == "summary"]
    assert summary_problems and {p.where for p in summary_problems} == {where}
    assert any(p.message.startswith("max: stored") and "ms" in p.message for p in summary_problems)


def test_edited_sample_that_flips_a_gate_is_named_as_a_gate_disagreement(tmp_path: Path) -> None:
    files = dict(small_bundle())
    _, cell = _sample_file(files)
    samples = cell["samples"]
    assert isinstance(samples, list)
    for entry in samples:  # every run, so the run-level interval stays narrow and decides
        if entry["phase"] == "measure":
            values = bundle.unpack_le(files[entry["ns"]], entry["ns"])
            for i in range(len(values)):
                values[i] *= 10  # far over the 2 ms / 3 ms budgets
            files[entry["ns"]] = bundle.pack_le(values)
    files[SUMS] = sums_text(files)
    report = verify(_write(tmp_path, files))
    gates = [p for p in report.problems if p.kind == "gate"]
    assert any(
        p.where == f"{cell['node']} {cell['key']}" and "over_budget: stored pass" in p.message for p in gates
    )


def test_missing_extra_and_unsafe_files_are_named(tmp_path: Path) -> None:
    files = dict(small_bundle())
    del files["thermal.json"]
    files["notes.txt"] = b"added later\n"
    folder = _write(tmp_path, files)
    report = verify(folder)
    found = {(p.kind, p.where) for p in report.problems}
    assert ("missing", "thermal.json") in found
    assert ("extra", "notes.txt") in found
    # A tarball with a path escaping its folder is never trusted (and never extracted).
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for name, data in small_bundle().items():
            info = tarfile.TarInfo(f"run/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("run/../../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    report = verify(evil)
    assert any(p.kind == "unsafe" and "escape.txt" in p.where for p in report.problems)
    assert not (tmp_path.parent / "escape.txt").exists()


def test_import_into_an_empty_store_gives_the_same_run_and_table(tmp_path: Path) -> None:
    fx = export_fixture.build(tmp_path / "original.db", **SMALL)  # type: ignore[arg-type]
    with fx.store as original:
        path = bundle.write(
            bundle.collect(original, fx.run_id, bundle_exports(original, fx.run_id)), tmp_path / "b.tgz"
        )
        with Store.open(tmp_path / "imported.db") as imported:
            result = import_bundle(path, imported)
            assert result.created and result.samples == fx.samples
            _assert_same_run(original, fx.run_id, imported, result.run_id)
            for fmt in ("csv", "md"):
                assert render(table_for_run(imported, result.run_id), fmt) == render(
                    table_for_run(original, fx.run_id), fmt
                ), fmt
            # Twice: nothing changes.
            counts = _row_counts(imported)
            again = import_bundle(path, imported)
            assert (again.created, again.run_id) == (False, result.run_id)
            assert _row_counts(imported) == counts
            # A bundle of the imported run is the same run: importing it back into the original
            # store changes nothing either.
            back = bundle.write(bundle.collect(imported, result.run_id), tmp_path / "back")
        before = _row_counts(original)
        assert import_bundle(back, original).created is False
        assert _row_counts(original) == before


def _row_counts(store: Store) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(store.path)
    try:
        tables = ("runs", "cells", "samples", "results", "gates", "thermal", "probes", "artifacts", "nodes")
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


def _verdicts(verdicts: list[GateVerdict]) -> list[tuple[object, ...]]:
    return [(v.gate, v.verdict, v.node, v.cell_key, v.detail, v.value) for v in verdicts]


def _assert_same_run(a: Store, run_a: int, b: Store, run_b: int) -> None:
    ra, rb = a.run(run_a), b.run(run_b)
    assert (ra.name, ra.contract_hash, ra.started_at, ra.status, ra.spec_toml, ra.versions) == (
        rb.name,
        rb.contract_hash,
        rb.started_at,
        rb.status,
        rb.spec_toml,
        rb.versions,
    )
    cells_a, cells_b = a.cells_for(run_a), b.cells_for(run_b)
    assert [(c.node, c.key, c.state, c.attempts) for c in cells_a] == [
        (c.node, c.key, c.state, c.attempts) for c in cells_b
    ]
    for ca, cb in zip(cells_a, cells_b, strict=True):
        for phase in ("warmup", "measure", "sustained"):
            assert a.samples(ca.id, phase) == b.samples(cb.id, phase)
        assert a.result(ca.id) == b.result(cb.id)
    assert _verdicts(a.gate_verdicts(run_a)) == _verdicts(b.gate_verdicts(run_b))
    assert [(p.node, p.t_ns, p.state) for p in a.thermal(run_a)] == [
        (p.node, p.t_ns, p.state) for p in b.thermal(run_b)
    ]
    assert [(p["node"], p["phase"], p["facts"]) for p in a.probes(run_a)] == [
        (p["node"], p["phase"], p["facts"]) for p in b.probes(run_b)
    ]


def test_tampered_bundle_is_never_imported(tmp_path: Path) -> None:
    files = dict(small_bundle())
    path, _ = _sample_file(files)
    files[path] = files[path][:-8] + b"\x00" * 8
    folder = _write(tmp_path, files)
    with Store.open(tmp_path / "s.db") as store:
        with pytest.raises(bundle.BundleTampered, match=f"changed: {path}"):
            import_bundle(folder, store)
        assert store.list_runs() == []


def test_cli_exit_codes(tmp_path: Path) -> None:
    fx = export_fixture.build(tmp_path / "fleet.db", **SMALL)  # type: ignore[arg-type]
    fx.store.close()
    db = str(tmp_path / "fleet.db")
    out = tmp_path / "run.tar.gz"
    made = _run("bundle", str(fx.run_id), "--db", db, "--output", str(out))
    assert made.returncode == 0, made.stderr
    assert f"wrote {out}" in made.stdout
    ok = _run("bundle", "verify", str(out))
    assert ok.returncode == 0 and ok.stdout.startswith("OK: "), ok.stdout + ok.stderr
    as_json = json.loads(_run("bundle", "verify", str(out), "--json").stdout)
    assert as_json["ok"] is True and as_json["problems"] == []
    # Tampered: exit 1, the file named.
    folder = tmp_path / "folder"
    shutil.unpack_archive(out, folder)
    (folder / "run" / "gates.json").write_text("[]\n")
    bad = _run("bundle", "verify", str(folder / "run"))
    assert bad.returncode == 1
    assert "changed: gates.json" in bad.stdout and "FAILED" in bad.stdout
    refused = _run("import", str(folder / "run"), "--db", str(tmp_path / "other.db"))
    assert refused.returncode == 1 and "nothing imported" in refused.stderr
    # Unreadable input: exit 2 with a clear message, never a traceback.
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    for args, text in (
        (["bundle", "verify", str(tmp_path / "absent")], "no such file or folder"),
        (["bundle", "verify", str(junk)], "not a readable tarball"),
        (["bundle", "verify", str(tmp_path)], "not a fleet-tui bundle (no SHA256SUMS)"),
        (["bundle", "99", "--db", db, "--output", str(tmp_path / "x")], "no run 99"),
        (["bundle", str(fx.run_id), "--db", db], "give --output"),
        (["bundle", str(fx.run_id), "--db", db, "--output", str(folder)], "not an empty folder"),
        (["import", str(junk), "--db", str(tmp_path / "other.db")], "not a readable tarball"),
        (["export", str(fx.run_id), "--db", db, "--format", "xlsx"], "unknown export format"),
        (
            ["export", str(fx.run_id), "--db", db, "--output", str(tmp_path / "t.txt")],
            "cannot tell the format",
        ),
    ):
        result = _run(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert text in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    imported = _run("import", str(out), "--db", str(tmp_path / "other.db"))
    assert imported.returncode == 0 and "imported run 'fixture' as run 1" in imported.stdout
    twice = _run("import", str(out), "--db", str(tmp_path / "other.db"))
    assert twice.returncode == 0 and "nothing changed" in twice.stdout
    exported = _run("export", str(fx.run_id), "--db", db, "--format", "md")
    assert exported.returncode == 0 and exported.stdout.startswith("## ")


def test_read_bundle_strips_the_tarball_folder(tmp_path: Path) -> None:
    path = bundle.write(small_bundle(), tmp_path / "named.tar.gz")
    read = read_bundle(path)
    assert isinstance(read, Bundle) and set(read.files) == set(small_bundle())


@pytest.mark.slow
def test_bundle_of_a_real_sweep_verifies_against_the_agents_own_summaries(
    sweep_env: dict[str, str], tmp_path: Path
) -> None:
    """A real sweep on the local node (numpy and MLX, a short sustained phase): the summaries
    and verdicts the agent and the sweep stored are exactly what verify recomputes."""
    from sweep_harness import local_node, run_cli, spec_text, write_setup

    spec = spec_text(
        workloads=(("mlp", (("b1", 1000.0), ("b8", 1000.0))),),
        engines='numpy = [{ dtype = "fp64" }]\nmlx = [{ device = "cpu", dtype = "fp32" }]',
        nodes=["local"],
        numeric=True,
    ).replace("sustained_minutes = 0", "sustained_minutes = 0.02")
    inventory, spec_path, db = write_setup(tmp_path, [local_node()], spec)
    swept = run_cli(["sweep", str(spec_path), "--inventory", str(inventory), "--db", str(db)], sweep_env)
    assert swept.returncode in (0, 1), swept.stdout + swept.stderr  # a gate verdict does not matter here
    out = tmp_path / "real.tar.gz"
    made = run_cli(["bundle", "1", "--db", str(db), "--output", str(out)], sweep_env)
    assert made.returncode == 0, made.stderr
    report = verify(out)
    assert report.ok, [str(p) for p in report.problems]
    assert report.cells_checked == 4 and report.verdicts_checked > 0
    content = bundle.load_content(read_bundle(out))
    assert all(s["summary"].get("drift") for s in content.summaries.values()), "no sustained phase ran"
    with Store.open(db) as original, Store.open(tmp_path / "imported.db") as imported:
        result = import_bundle(out, imported)
        _assert_same_run(original, 1, imported, result.run_id)
        assert render(table_for_run(imported, result.run_id), "md") == render(
            table_for_run(original, 1), "md"
        )


def test_a_run_with_energy_bundles_and_imports_its_energy(tmp_path: Path) -> None:
    from dataclasses import replace

    energy = {
        "status": "ok",
        "reader": {"name": "macmon", "version": "0.6.1", "interval_ms": 100},
        "window": "measure",
        "j_per_inference": {"soc": {"estimate": 0.25, "lo": 0.24, "hi": 0.26, "values": [0.24, 0.26]}},
        "avg_watts": {"soc": 7.5, "system": 17.5},
    }
    nodes = tuple(replace(n, kwh_usd=0.3) for n in export_fixture.NODES[:2])
    fx = export_fixture.build(tmp_path / "original.db", **{**SMALL, "nodes": nodes})  # type: ignore[arg-type]
    with fx.store as store:
        for cell in store.cells_for(fx.run_id, states=["done"]):
            summary = store.result(cell.id) or {}
            store.add_result(cell.id, {**summary, "energy": energy, "power_reader": "macmon"})
        files = bundle.collect(store, fx.run_id)
        rows = json.loads(files["energy.json"])
        assert (
            rows
            and {r["reader"] for r in rows} == {"macmon"}
            and {r["j_per_inf_soc"] for r in rows} == {0.25}
        )
        assert {n["kwh_usd"] for n in json.loads(files["nodes.json"])} == {0.3}
        assert "energy.json" in files[SUMS].decode()  # hashed like every other file
        path = bundle.write(files, tmp_path / "b")
        assert verify(path).ok, verify(path).problems
        with Store.open(tmp_path / "imported.db") as imported:
            result = import_bundle(path, imported)
            copied = imported.energy(result.run_id)
            assert [r["j_per_inf_soc"] for r in copied] == [r["j_per_inf_soc"] for r in rows]
            assert [r["watts_system"] for r in copied] == [17.5] * len(rows)
            assert {n["kwh_usd"] for n in imported.nodes()} == {0.3}
