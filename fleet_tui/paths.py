"""Every location fleet-tui uses on the controller, and their environment overrides, in one place.

- the store: `--db` > $FLEET_TUI_DB > $XDG_DATA_HOME/fleet-tui/fleet.db > ~/.local/share/fleet-tui/fleet.db
- the cache: $FLEET_TUI_CACHE > $XDG_CACHE_HOME/fleet-tui > ~/.cache/fleet-tui, holding
  `artifacts/` (built model packages) and `agent/` (the agent zipapp)

Any layer may import this module (it is stdlib only; its one I/O is `make_private_dir`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DB_ENV = "FLEET_TUI_DB"
"""Environment variable naming the SQLite store; wins over the user data dir."""

CACHE_ENV = "FLEET_TUI_CACHE"
"""Environment variable naming the cache root; wins over the XDG cache dir."""

APP_DIR_NAME = "fleet-tui"


def user_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME/fleet-tui, else ~/.local/share/fleet-tui (not created here)."""
    env = os.environ if env is None else env
    # XDG says a relative XDG_DATA_HOME is invalid and must be ignored.
    xdg = env.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / APP_DIR_NAME


def default_db_path(env: Mapping[str, str] | None = None) -> Path:
    """$FLEET_TUI_DB > $XDG_DATA_HOME/fleet-tui/fleet.db > ~/.local/share/fleet-tui/fleet.db."""
    env = os.environ if env is None else env
    explicit = env.get(DB_ENV, "")
    if explicit:
        return Path(explicit).expanduser()
    return user_data_dir(env) / "fleet.db"


def resolve_db_path(arg: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path:
    """The store path for a `--db` argument: the argument if given, else `default_db_path`."""
    if arg is not None and str(arg) != "":
        return Path(arg).expanduser()
    return default_db_path(env)


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """$FLEET_TUI_CACHE, else $XDG_CACHE_HOME/fleet-tui, else ~/.cache/fleet-tui (not created here)."""
    env = os.environ if env is None else env
    explicit = env.get(CACHE_ENV, "")
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / APP_DIR_NAME


def artifacts_root(cache: Path | None = None) -> Path:
    """Built model packages, content-addressed, under the cache root (or `cache`)."""
    return (cache or cache_root()) / "artifacts"


def agent_cache_dir(cache: Path | None = None) -> Path:
    """The agent zipapp (agent-<sha256>.pyz) built for deploys, under the cache root (or `cache`)."""
    return (cache or cache_root()) / "agent"


def make_private_dir(path: Path) -> None:
    """Create `path` and every missing parent as 0700, whatever the umask (a store holds fleet facts).

    Folders that already exist are left as they are.
    """
    missing: list[Path] = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
