"""The fleet inventory: TOML files of nodes, read with tomllib and written back with tomli-w.

A file holds an optional ``[defaults]`` table (any node field except ``name`` and ``host``,
applied to every node of that file) and ``[[node]]`` tables::

    [defaults]
    user = "bench"
    python = "/Users/bench/.venvs/fleet/bin/python"

    [[node]]
    name = "m2-pro-a"
    host = "m2-pro-a.example.internal"
    tier = "M2 Pro"
    hourly_usd = 0.9

An inventory path may be a file or a folder (every ``*.toml`` in it, sorted by name); node
names must be unique across all of them. Bad input raises `InventoryError` with one message
that names the file (and line where known), the node and the field. Nothing is guessed: an
unknown key is an error (with the close match suggested), never silently ignored.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal, cast

import tomli_w

from fleet_tui.config.files import ConfigFileError, read_regular_text

Transport = Literal["ssh", "local"]

ENV_INVENTORY: Final = "FLEET_TUI_INVENTORY"
EMBEDDED_INVENTORY: Final = Path(__file__).parent.parent / "data" / "local.toml"
"""This machine as the only node; used when nothing else is configured."""

LOCAL_HOST: Final = "localhost"
SSH_PYTHON: Final = "python3"


@dataclass(frozen=True)
class Node:
    """One machine of the fleet, as the inventory describes it (the probe tells the truth)."""

    name: str
    host: str
    transport: Transport = "ssh"
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    python: str = SSH_PYTHON
    """Interpreter on the node. Local nodes default to the controller's own (sys.executable)."""
    tier: str | None = None
    """What the operator rents or bought, e.g. "M2 Pro"; the probed chip is the truth."""
    hourly_usd: float | None = None
    purchase_usd: float | None = None
    kwh_usd: float | None = None
    """Electricity price at this node (US dollars per kWh), for the energy part of the cost view."""
    tags: tuple[str, ...] = ()
    proxy_jump: str | None = None
    source: str = field(default="", compare=False)
    """The file this node came from, for error messages. Not part of equality."""


class InventoryError(ValueError):
    """Bad inventory input. The message names the file (and TOML line), the node and the field."""


# Field name -> what it must be. Kept next to `Node` so a new field cannot be forgotten here.
_STRING_FIELDS: Final = frozenset({"name", "host", "user", "identity_file", "python", "tier", "proxy_jump"})
_PRICE_FIELDS: Final = frozenset({"hourly_usd", "purchase_usd", "kwh_usd"})
NODE_KEYS: Final = tuple(f.name for f in fields(Node) if f.name != "source")
DEFAULT_KEYS: Final = tuple(k for k in NODE_KEYS if k not in ("name", "host"))
_TOP_LEVEL_KEYS: Final = ("defaults", "node")
_NAME_PATTERN: Final = re.compile(r"^[\w.@:+-]+$")

# What a host, user, path or jump host may be. Commands are quoted, so nothing here could run;
# but `;`, `$(...)`, a newline or a leading `-` in these fields is always a mistake (or an attack
# on some other tool reading the file), reported at load rather than as a confusing SSH failure.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HOST_PATTERN: Final = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$")
"""A DNS name, an IPv4 address or a Host alias of ~/.ssh/config (IPv6 is checked by `ipaddress`)."""
_USER_PATTERN: Final = re.compile(r"^[\w.][\w.@$-]{0,127}$")
_PATH_PATTERN: Final = re.compile(r"^[\w./~+@:%,=](?:[\w./~+@:%,= -]{0,4094})$")
"""A file path or command name: letters (any script), digits, spaces inside and `. / ~ + @ : % , = - _`
(not first: `-`, which a program would read as an option)."""
_SHOWN_MAX: Final = 60


def resolve_inventory_path(arg: str | None) -> Path:
    """Which inventory to use: arg > $FLEET_TUI_INVENTORY > ./inventory/local.toml > the embedded one."""
    if arg:
        return Path(arg).expanduser()
    env = os.environ.get(ENV_INVENTORY)
    if env:
        return Path(env).expanduser()
    cwd_default = Path("inventory") / "local.toml"
    if cwd_default.is_file():
        return cwd_default
    return EMBEDDED_INVENTORY


def load_inventory(path: str | Path | None = None) -> list[Node]:
    """Read a TOML file or a folder of them into nodes. Raises InventoryError on any bad input."""
    root = resolve_inventory_path(None) if path is None else Path(path).expanduser()
    files = _inventory_files(root)
    nodes: list[Node] = []
    seen: dict[str, str] = {}  # name -> "file node #i", for the duplicate message
    for file in files:
        for index, node in enumerate(_load_file(file), start=1):
            where = f"{file} node #{index}"
            if node.name in seen:
                raise InventoryError(
                    f"{where}: field 'name': duplicate node name {node.name!r} "
                    f"(already defined in {seen[node.name]}); names must be unique across the inventory"
                )
            seen[node.name] = where
            nodes.append(node)
    return nodes


def save_inventory(nodes: Sequence[Node], path: str | Path) -> None:
    """Write nodes as one TOML file (atomically). ``load_inventory(path)`` gives the same nodes back.

    Fields at their default value are left out, so a local node without an explicit python keeps
    following whichever interpreter runs the controller.
    """
    names = [n.name for n in nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InventoryError(f"{path}: field 'name': duplicate node names {duplicates}")
    document = {"node": [_node_to_table(n) for n in nodes]}
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(tomli_w.dumps(document), encoding="utf-8")
    os.replace(tmp, target)


def _node_to_table(node: Node) -> dict[str, Any]:
    table: dict[str, Any] = {"name": node.name}
    if not (node.transport == "local" and node.host == LOCAL_HOST):
        table["host"] = node.host
    if node.transport != "ssh":
        table["transport"] = node.transport
    for key in ("port", "user", "identity_file"):
        value = getattr(node, key)
        if value is not None:
            table[key] = value
    if node.python != _default_python(node.transport):
        table["python"] = node.python
    for key in ("tier", "hourly_usd", "purchase_usd", "kwh_usd"):
        value = getattr(node, key)
        if value is not None:
            table[key] = value
    if node.tags:
        table["tags"] = list(node.tags)
    if node.proxy_jump is not None:
        table["proxy_jump"] = node.proxy_jump
    return table


def _default_python(transport: str) -> str:
    # A local node runs the agent with the controller's own interpreter, so its venv (numpy,
    # mlx, coremltools) is there without any setup.
    return sys.executable if transport == "local" else SSH_PYTHON


def _inventory_files(root: Path) -> list[Path]:
    if root.is_dir():
        # Not only regular files: a FIFO named *.toml in the folder is refused when read, not skipped.
        files = sorted(p for p in root.glob("*.toml") if not p.is_dir())
        if not files:
            raise InventoryError(f"{root}: inventory folder has no *.toml files")
        return files
    if not root.exists():
        raise InventoryError(f"{root}: inventory file not found")
    return [root]


def _load_file(file: Path) -> list[Node]:
    try:
        text = read_regular_text(file)
    except ConfigFileError as exc:
        raise InventoryError(f"{file}: cannot read inventory: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line L, column C)": keep it, it is the useful part.
        raise InventoryError(f"{file}: TOML syntax error: {exc}") from None
    for key in document:
        if key not in _TOP_LEVEL_KEYS:
            raise InventoryError(f"{file}: unknown top-level key {key!r}{_suggest(key, _TOP_LEVEL_KEYS)}")

    tables = document.get("node", [])
    if isinstance(tables, dict):
        raise InventoryError(f"{file}: 'node' must be an array of tables: write [[node]], not [node]")
    if not isinstance(tables, list):
        raise InventoryError(
            f"{file}: 'node' must be an array of tables ([[node]]), got {_toml_type(tables)}"
        )
    lines = _LineFinder(text, node_count=len(tables))

    defaults_raw = document.get("defaults", {})
    if not isinstance(defaults_raw, dict):
        raise InventoryError(
            f"{file}: 'defaults' must be a table ([defaults]), got {_toml_type(defaults_raw)}"
        )
    defaults_where = f"{file}{lines.defaults()}: [defaults]"
    for key in defaults_raw:
        if key in ("name", "host"):
            raise InventoryError(f"{defaults_where}: field {key!r} cannot have a default; set it per node")
        if key not in DEFAULT_KEYS:
            raise InventoryError(f"{defaults_where}: unknown field {key!r}{_suggest(key, DEFAULT_KEYS)}")
    defaults = {k: _check_value(k, v, defaults_where) for k, v in defaults_raw.items()}
    return [_build_node(file, lines, index, table, defaults) for index, table in enumerate(tables, start=1)]


def _build_node(
    file: Path, lines: _LineFinder, index: int, table: object, defaults: Mapping[str, Any]
) -> Node:
    if not isinstance(table, dict):
        raise InventoryError(f"{file}: node #{index} must be a table, got {_toml_type(table)}")
    name = table.get("name")
    label = f"node {name!r} (#{index})" if isinstance(name, str) and name else f"node #{index}"

    def where(key: str | None = None) -> str:
        return f"{file}{lines.node(index, key)}: {label}"

    for key in table:
        if key not in NODE_KEYS:
            raise InventoryError(f"{where(key)}: unknown field {key!r}{_suggest(key, NODE_KEYS)}")
    if "name" not in table:
        raise InventoryError(f"{where()}: field 'name' is missing")
    values = dict(defaults)
    values.update({k: _check_value(k, v, where(k)) for k, v in table.items()})

    transport = values.get("transport", "ssh")
    if "host" not in values:
        if transport == "ssh":
            raise InventoryError(f"{where()}: field 'host' is missing (required for ssh nodes)")
        values["host"] = LOCAL_HOST
    if "python" not in values:
        values["python"] = _default_python(transport)
    if "tags" in values:
        values["tags"] = tuple(values["tags"])
    return Node(**values, source=str(file))


def _check_value(key: str, value: object, where: str) -> Any:
    """Validate one field's value; return it in Node's type (ints widened to float for prices)."""
    prefix = f"{where}: field {key!r}"
    if key in _STRING_FIELDS:
        if not isinstance(value, str):
            raise InventoryError(f"{prefix} must be a string, got {_toml_type(value)}")
        if not value.strip():
            raise InventoryError(f"{prefix} must not be empty")
        if key == "name" and not _NAME_PATTERN.match(value):
            raise InventoryError(
                f"{prefix}: {_shown(value)} is not a valid node name (letters, digits and . _ - @ : + only)"
            )
        if _CONTROL.search(value):
            raise InventoryError(
                f"{prefix}: {_shown(value)} contains a control character (newline, tab, ESC, ...)"
            )
        problem = _string_problem(key, value)
        if problem:
            raise InventoryError(f"{prefix}: {_shown(value)} {problem}")
        return value
    if key == "transport":
        if value not in ("ssh", "local"):
            shown = repr(value) if isinstance(value, str) else _toml_type(value)
            raise InventoryError(f'{prefix} must be "ssh" or "local", got {shown}')
        return value
    if key == "port":
        if not isinstance(value, int) or isinstance(value, bool):
            raise InventoryError(f"{prefix} must be an integer, got {_toml_type(value)}")
        if not 1 <= value <= 65535:
            raise InventoryError(f"{prefix} must be between 1 and 65535, got {value}")
        return value
    if key in _PRICE_FIELDS:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InventoryError(f"{prefix} must be a number (US dollars), got {_toml_type(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise InventoryError(f"{prefix} must be a finite number, got {value}")
        if value < 0:
            raise InventoryError(f"{prefix} must not be negative, got {value}")
        return float(value)
    if key == "tags":
        if not isinstance(value, list):
            raise InventoryError(f"{prefix} must be an array of strings, got {_toml_type(value)}")
        for i, tag in enumerate(cast(list[object], value)):
            if not isinstance(tag, str) or not tag.strip():
                got = _toml_type(tag) if not isinstance(tag, str) else "an empty string"
                raise InventoryError(f"{prefix} must be an array of non-empty strings; item {i} is {got}")
            if _CONTROL.search(tag):
                raise InventoryError(f"{prefix}: item {i} {_shown(tag)} contains a control character")
        return value
    raise AssertionError(f"unhandled inventory field {key}")  # NODE_KEYS and this function disagree


def _shown(value: str) -> str:
    """The value as a Python literal (control characters escaped), shortened for a message."""
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 4] + "...'"


def _string_problem(key: str, value: str) -> str | None:
    """Why `value` cannot be the field `key` (None when it can)."""
    if key == "host":
        return (
            None
            if _is_host(value)
            else "is not a host name, IPv4 or IPv6 address, or ~/.ssh/config Host alias"
        )
    if key == "user":
        return None if _USER_PATTERN.match(value) else "is not a user name (letters, digits and . _ - @ $)"
    if key in ("python", "identity_file"):
        if _PATH_PATTERN.match(value) and value == value.strip():
            return None
        return (
            "is not a plain path (letters, digits, spaces inside and . / ~ + @ : % , = - _ only; "
            "no shell syntax such as ; $ ` | & < > ( ) quotes or a leading -)"
        )
    if key == "proxy_jump":
        for hop in value.split(","):
            problem = _jump_problem(hop)
            if problem:
                return f"is not a jump host list ([user@]host[:port], comma-separated): {problem}"
    return None


def _is_host(value: str) -> bool:
    if _HOST_PATTERN.match(value):
        return True
    try:
        return ipaddress.ip_address(value.split("%", 1)[0]).version == 6
    except ValueError:
        return False


def _jump_problem(hop: str) -> str | None:
    user, _, host = hop.rpartition("@")
    if user and not _USER_PATTERN.match(user):
        return f"user {_shown(user)} is not a user name"
    host, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
    if colon and not (port.isdigit() and 1 <= int(port) <= 65535):
        if ":" in host:
            return "an IPv6 address cannot be written here (use a Host alias from ~/.ssh/config)"
        return f"port {_shown(port)} is not in 1-65535"
    if ":" in host or host.startswith("["):
        return "an IPv6 address cannot be written here (use a Host alias from ~/.ssh/config)"
    if not _HOST_PATTERN.match(host):
        return f"host {_shown(host)} is not a host name or IPv4 address"
    return None


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__  # dates and times


def _suggest(key: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else f"; expected one of {', '.join(choices)}"


_NODE_HEADER: Final = re.compile(r"^\s*\[\[\s*node\s*\]\]")
_DEFAULTS_HEADER: Final = re.compile(r"^\s*\[\s*defaults\s*\]")
_ANY_HEADER: Final = re.compile(r"^\s*\[")


class _LineFinder:
    """Line numbers for error messages, from the table headers in the text.

    tomllib reports lines only for syntax errors. For semantic errors we point at the
    ``[[node]]`` header (or the key's own line inside it). When the headers cannot be matched
    one-to-one with the parsed nodes (inline tables, headers inside multi-line strings), no
    line is given rather than a wrong one.
    """

    def __init__(self, text: str, node_count: int) -> None:
        self._lines = text.splitlines()
        starts = [i for i, line in enumerate(self._lines) if _NODE_HEADER.match(line)]
        self._node_starts = starts if len(starts) == node_count else []
        self._defaults = next((i for i, ln in enumerate(self._lines) if _DEFAULTS_HEADER.match(ln)), None)

    def defaults(self) -> str:
        return f":{self._defaults + 1}" if self._defaults is not None else ""

    def node(self, index: int, key: str | None) -> str:
        if index > len(self._node_starts):
            return ""
        start = self._node_starts[index - 1]
        if key is not None:
            key_line = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*=")
            for i in range(start + 1, len(self._lines)):
                if _ANY_HEADER.match(self._lines[i]):
                    break
                if key_line.match(self._lines[i]):
                    return f":{i + 1}"
        return f":{start + 1}"
