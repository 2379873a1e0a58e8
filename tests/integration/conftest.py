"""Fixtures for the sweep integration tests (helpers live in tests/sweep_harness.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sweep_harness import RUNNING

from fleet_tui.store import Store


@pytest.fixture(scope="session")
def artifact_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact cache for every test of the session (and kept for the next session:
    pytest's base temp parent persists, and builds are content-addressed and re-verified)."""
    path = tmp_path_factory.getbasetemp().parent / "fleet-tui-artifact-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def sweep_env(isolated_home: Path, artifact_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["FLEET_TUI_CACHE"] = str(artifact_cache)
    env["CI"] = "1"  # plain progress lines, never the TTY block
    env.pop("SSH_AUTH_SOCK", None)
    return env


@pytest.fixture(autouse=True)
def _no_sweep_left_behind() -> Iterator[None]:
    """A failed test must not leave a sweep running (it would measure into the next test)."""
    yield
    while RUNNING:
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def store_reader() -> Iterator[Callable[[Path], Store]]:
    opened: list[Store] = []

    def open_store(path: Path) -> Store:
        store = Store.open(path)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
