"""Editing one inventory file in place: its nodes as written (not with [defaults] applied), checked
by the loader itself, and written back with tomli-w keeping every other key of the file.

The editor works on the raw TOML tables so a node that inherits `user` from `[defaults]` keeps
inheriting it after a save, and `[defaults]` (or any other table of the file) is written back
as it was read. Comments and key order are not kept: tomli-w writes data, not the original text.
Validation is the loader's own (`load_inventory`) on exactly the bytes that would be saved, so
the editor can never accept a file that `fleet-tui` would then refuse, and its errors name the
field the same way.
"""

from __future__ import annotations

import copy
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from fleet_tui.config.inventory import NODE_KEYS, InventoryError, Node, load_inventory

NodeTable = dict[str, Any]
"""One `[[node]]` table as written in the file."""

EDITABLE_FIELDS: tuple[str, ...] = tuple(NODE_KEYS)
"""The node fields an editor offers, in form order: every field of `Node` but its source."""


def read_document(path: Path) -> dict[str, Any]:
    """The whole file as TOML data (empty for a file that does not exist yet). InventoryError if bad."""
    from fleet_tui.config.files import ConfigFileError, read_regular_text

    if not path.exists():
        return {}
    try:
        # The loader's own reader: a FIFO or device in place of the file is refused, never read.
        document = tomllib.loads(read_regular_text(path))
    except ConfigFileError as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{path}: TOML syntax error: {exc}") from None
    return document


def node_tables(document: dict[str, Any]) -> list[NodeTable]:
    """Copies of the file's `[[node]]` tables (editing them leaves `document` alone)."""
    tables = document.get("node", [])
    return [copy.deepcopy(t) for t in tables if isinstance(t, dict)] if isinstance(tables, list) else []


def with_nodes(document: dict[str, Any], tables: list[NodeTable]) -> dict[str, Any]:
    """`document` with its nodes replaced by `tables`; every other key is kept as it was."""
    updated = copy.deepcopy(document)
    updated["node"] = copy.deepcopy(tables)
    return updated


def render(document: dict[str, Any]) -> str:
    """The TOML text a save writes."""
    return tomli_w.dumps(document)


def validate(document: dict[str, Any], path: Path) -> list[Node]:
    """The nodes `document` would load as, if saved at `path`. InventoryError naming the field.

    The loader reads the exact text a save would write (from a private temporary copy), and its
    messages name `path`, so they read as they will once the file is saved.
    """
    text = render(document)
    with tempfile.TemporaryDirectory(prefix="fleet-tui-inventory-") as folder:
        candidate = Path(folder) / path.name
        candidate.write_text(text, encoding="utf-8")
        try:
            return load_inventory(candidate)
        except InventoryError as exc:
            raise InventoryError(str(exc).replace(str(candidate), str(path))) from None


def save(document: dict[str, Any], path: Path) -> list[Node]:
    """Validate, then write `document` to `path` atomically. The nodes saved; InventoryError if bad."""
    nodes = validate(document, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(render(document), encoding="utf-8")
    os.replace(tmp, path)
    return nodes


def field_text(value: object) -> str:
    """How a form shows a field's TOML value (tags comma-separated)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def field_value(key: str, text: str) -> object | None:
    """A form's text as the TOML value it means; None (leave the key out) when empty.

    Text that is not of the field's type stays text, so the loader's own check says what the
    field must be ("field 'port' must be an integer, got string").
    """
    text = text.strip()
    if not text:
        return None
    if key == "port":
        try:
            return int(text)
        except ValueError:
            return text
    if key in ("hourly_usd", "purchase_usd"):
        try:
            return float(text)
        except ValueError:
            return text
    if key == "tags":
        return [tag.strip() for tag in text.split(",")]
    return text
