"""Where the store lives: created private whatever the umask; a --db that is not a file is refused
by name (exit 2), never read as an empty store nor handed to SQLite."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_tui.store import Store, StoreError


def _cli(
    args: list[str], env: dict[str, str] | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet_tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,  # noqa: PLW1509 - no threads here
    )


def test_probe_under_umask_000_creates_the_data_dir_0700_and_the_store_0600(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("FLEET_TUI_DB", None)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg" / "data")
    env["HOME"] = str(tmp_path / "home")
    inventory = tmp_path / "local.toml"
    inventory.write_text('[[node]]\nname = "local"\ntransport = "local"\n')
    result = _cli(["probe", "--inventory", str(inventory)], env=env, umask=0)
    assert result.returncode == 0, result.stdout + result.stderr
    data_dir = tmp_path / "xdg" / "data" / "fleet-tui"
    for folder in (tmp_path / "xdg", tmp_path / "xdg" / "data", data_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((data_dir / "fleet.db").stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["directory", "fifo"])
@pytest.mark.parametrize("command", [["runs"], ["runs", "--json"], ["compare"], ["sweep", "--resume", "1"]])
@pytest.mark.timeout(60)
def test_a_db_that_is_not_a_file_exits_2_with_the_reason(
    tmp_path: Path, kind: str, command: list[str]
) -> None:
    db = tmp_path / "store.db"
    if kind == "directory":
        db.mkdir()
    else:
        os.mkfifo(db)  # SQLite reading it would block forever
    result = _cli([*command, "--db", str(db)])
    assert result.returncode == 2, result.stdout + result.stderr
    reason = "a directory" if kind == "directory" else "not a regular file"
    assert f"{db} is {reason}; a fleet-tui store (--db) is one SQLite file" in result.stderr
    assert "no runs" not in result.stdout and "Traceback" not in result.stderr


@pytest.mark.timeout(30)
def test_store_open_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fleet.db"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"):
        Store.open(fifo)
