"""The run lock: one process at a time works on a run; the refusal names the holder; a lock whose
holder died is taken over. Real flock on real files, holders in real subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from spec_fixtures import spec_toml

from fleet_tui.config.spec import parse_spec
from fleet_tui.store import RunLockedError, Store
from fleet_tui.store.runlock import lock_path

HOLDER = """
import sys, time
from fleet_tui.store import Store
store = Store.open(sys.argv[1])
store.lock_run(int(sys.argv[2]))
print("held", flush=True)
time.sleep(120)
"""


def _holder(db: Path, run_id: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db), str(run_id)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _run(db: Path) -> int:
    with Store.open(db) as store:
        return store.create_run(parse_spec(spec_toml("lock")))


def test_a_new_run_is_locked_by_its_creator_until_the_store_closes(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    creator = Store.open(db)
    run_id = creator.create_run(parse_spec(spec_toml("lock")))
    with Store.open(db) as other, pytest.raises(RunLockedError) as refused:
        other.lock_run(run_id)
    assert f"pid {os.getpid()} on {socket.gethostname()}" in str(refused.value)
    assert refused.value.holder is not None and refused.value.holder.pid == os.getpid()
    creator.close()
    assert not lock_path(db, run_id).exists()  # released and removed
    with Store.open(db) as other:
        assert other.lock_run(run_id).previous is None


def test_a_live_holder_in_another_process_is_named(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    run_id = _run(db)
    holder = _holder(db, run_id)
    try:
        with Store.open(db) as store, pytest.raises(RunLockedError) as refused:
            store.lock_run(run_id)
        message = str(refused.value)
        assert f"run {run_id} is in use by another fleet-tui (pid {holder.pid} on " in message
        assert "since " in message and str(lock_path(db, run_id)) in message
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_holder_that_died_is_taken_over(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    run_id = _run(db)
    holder = _holder(db, run_id)
    holder.send_signal(signal.SIGKILL)  # no cleanup: its lock file stays behind
    holder.wait()
    assert lock_path(db, run_id).exists()
    with Store.open(db) as store:
        lock = store.lock_run(run_id)
        assert lock.previous is not None and lock.previous.pid == holder.pid
        with Store.open(db) as other, pytest.raises(RunLockedError):
            other.lock_run(run_id)  # and now it is this process's


def test_locks_are_per_run(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    with Store.open(db) as store:
        first = store.create_run(parse_spec(spec_toml("a")))
        second = store.create_run(parse_spec(spec_toml("b")))
        assert store.lock_run(first).held and store.lock_run(second).held
        store.release_run(first)
        with Store.open(db) as other:
            other.lock_run(first)
            with pytest.raises(RunLockedError):
                other.lock_run(second)


def test_an_unwritable_lock_folder_is_a_store_error(tmp_path: Path) -> None:
    from fleet_tui.store import StoreError
    from fleet_tui.store.runlock import acquire_run_lock

    with pytest.raises(StoreError, match="cannot create the run lock"):
        acquire_run_lock(tmp_path / "missing-folder" / "fleet.db", 1)
