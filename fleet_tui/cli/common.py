"""What the store-reading commands share: one bad-input error type and one way to open the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fleet_tui.config.inventory import Node
    from fleet_tui.config.settings import SshSettings
    from fleet_tui.store import Store


RUN_ID_MAX = 2**63 - 1
"""A run id is a SQLite integer: above this, SQLite cannot even look it up."""


class CommandError(Exception):
    """Bad operator input: printed as one line on stderr, exit 2."""


def open_existing_store(db: str | None) -> Store:
    """The store at --db (or the default location); CommandError when there is none or it is unusable."""
    from fleet_tui.paths import resolve_db_path
    from fleet_tui.store import Store, StoreError
    from fleet_tui.store.db import not_a_store_file

    path = resolve_db_path(db)
    problem = not_a_store_file(path)
    if problem is not None:
        raise CommandError(problem)
    if not path.is_file():
        raise CommandError(f"no store at {path}: run a sweep first (fleet-tui sweep SPEC)")
    try:
        return Store.open(path)
    except StoreError as exc:
        raise CommandError(str(exc)) from None


def known_hosts_error(settings: SshSettings, nodes: Sequence[Node]) -> str | None:
    """Why known_hosts is unusable for these nodes (None when it is, or no node uses SSH).

    Checked before any node is contacted: a directory, a path under a file or a read-only
    known_hosts is the operator's config (exit 2), not every node `unreachable` (exit 3).
    """
    if not any(node.transport == "ssh" for node in nodes):
        return None
    from fleet_tui.fleet.transport.hostkeys import known_hosts_problem

    problem = known_hosts_problem(settings)
    return None if problem is None else f"{problem} (set it with --known-hosts PATH)"
