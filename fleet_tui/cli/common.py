"""What the store-reading commands share: one bad-input error type and one way to open the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleet_tui.store import Store


RUN_ID_MAX = 2**63 - 1
"""A run id is a SQLite integer: above this, SQLite cannot even look it up."""


class CommandError(Exception):
    """Bad operator input: printed as one line on stderr, exit 2."""


def open_existing_store(db: str | None) -> Store:
    """The store at --db (or the default location); CommandError when there is none or it is unusable."""
    from fleet_tui.paths import resolve_db_path
    from fleet_tui.store import Store, StoreError

    path = resolve_db_path(db)
    if not path.is_file():
        raise CommandError(f"no store at {path}: run a sweep first (fleet-tui sweep SPEC)")
    try:
        return Store.open(path)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
