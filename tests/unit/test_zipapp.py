"""The agent zipapp: deterministic bytes, clean entries, and an agent that checks its own hash."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from fleet_tui.fleet.deploy import SHEBANG, agent_package_dir, agent_zipapp_bytes, build_agent_zipapp


def _copy_agent_sources(dest: Path) -> Path:
    package = dest / "node_agent"
    shutil.copytree(agent_package_dir(), package, ignore=shutil.ignore_patterns("__pycache__"))
    return package


def test_same_bytes_after_touching_sources(tmp_path: Path) -> None:
    package = _copy_agent_sources(tmp_path / "src")
    first = build_agent_zipapp(tmp_path / "out1", package)
    for path in package.rglob("*.py"):
        os.utime(path, (1_900_000_000, 1_900_000_000))  # new mtimes must not change a byte
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "protocol.cpython-311.pyc").write_bytes(b"stale bytecode")
    (package / "notes.txt").write_text("not python: not shipped")
    second = build_agent_zipapp(tmp_path / "out2", package)
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.path.name == f"agent-{first.sha256[:16]}.pyz"
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256


def test_changed_source_changes_the_name(tmp_path: Path) -> None:
    package = _copy_agent_sources(tmp_path / "src")
    before = build_agent_zipapp(tmp_path / "out", package)
    with open(package / "protocol.py", "a") as fh:
        fh.write("\n# an edit\n")
    after = build_agent_zipapp(tmp_path / "out", package)
    assert before.sha256 != after.sha256
    assert before.path != after.path


def test_entries_are_sorted_stored_and_fixed(tmp_path: Path) -> None:
    data = agent_zipapp_bytes()
    assert data.startswith(SHEBANG)
    path = tmp_path / "a.pyz"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names[0] == "__main__.py"
    assert names[1:] == sorted(names[1:])
    assert "node_agent/__main__.py" in names and "node_agent/protocol.py" in names
    assert all(n.endswith(".py") and "__pycache__" not in n for n in names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    assert {i.external_attr >> 16 for i in infos} == {0o644}


def _events(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_built_agent_runs_and_reports_its_hash(tmp_path: Path) -> None:
    bundle = build_agent_zipapp(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-u", str(bundle.path), "version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    events = _events(proc.stdout)
    assert [e["type"] for e in events] == ["hello", "done"]
    assert events[0]["agent_sha"] == bundle.sha256


def test_tampered_agent_refuses_to_start(tmp_path: Path) -> None:
    bundle = build_agent_zipapp(tmp_path)
    data = bytearray(bundle.path.read_bytes())
    # Same length, archive still valid: only the shebang changes, so only the hash can tell.
    data[: len(SHEBANG)] = b"#!/usr/bin/env python4\n"
    bundle.path.write_bytes(bytes(data))
    proc = subprocess.run(
        [sys.executable, "-u", str(bundle.path), "probe"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    events = _events(proc.stdout)
    assert events[0]["type"] == "error" and events[0]["code"] == "agent_tampered"
    assert events[-1] == {"schema": 1, "type": "done", "ok": False, "exit_code": 3}
