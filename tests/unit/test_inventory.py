"""Inventory files: valid ones load, bad ones give one clear error naming file, node and field."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_tui.config.inventory import (
    EMBEDDED_INVENTORY,
    InventoryError,
    Node,
    Transport,
    load_inventory,
    resolve_inventory_path,
    save_inventory,
)

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "fleet.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    return str(info.value)


# --- valid files ------------------------------------------------------------------------------


def test_defaults_apply_to_every_node_and_nodes_override_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults]
user = "bench"
python = "/opt/venv/bin/python"
tags = ["rented"]

[[node]]
name = "a"
host = "a.example.internal"
port = 2222
hourly_usd = 1

[[node]]
name = "b"
host = "b.example.internal"
user = "alex"
tags = ["owned", "laptop"]
purchase_usd = 1299.5
proxy_jump = "bastion"
tier = "M2 Pro"
""",
    )
    a, b = load_inventory(path)
    assert a == Node(
        name="a",
        host="a.example.internal",
        port=2222,
        user="bench",
        python="/opt/venv/bin/python",
        tags=("rented",),
        hourly_usd=1.0,
    )
    assert isinstance(a.hourly_usd, float)
    assert b.user == "alex" and b.tags == ("owned", "laptop") and b.python == "/opt/venv/bin/python"
    assert (b.purchase_usd, b.proxy_jump, b.tier, b.transport) == (1299.5, "bastion", "M2 Pro", "ssh")
    assert a.source == str(path)


def test_local_node_needs_no_host_and_runs_the_controllers_python(tmp_path: Path) -> None:
    path = write(tmp_path, '[[node]]\nname = "here"\ntransport = "local"\n')
    (node,) = load_inventory(path)
    assert (node.host, node.transport, node.python) == ("localhost", "local", sys.executable)


def test_ssh_node_python_defaults_to_python3(tmp_path: Path) -> None:
    (node,) = load_inventory(write(tmp_path, '[[node]]\nname = "a"\nhost = "h"\n'))
    assert node.python == "python3"


def test_folder_merges_all_toml_files_sorted(tmp_path: Path) -> None:
    write(tmp_path, '[[node]]\nname = "z-first-file"\nhost = "h1"\n', "a.toml")
    write(tmp_path, '[[node]]\nname = "b1"\nhost = "h2"\n[[node]]\nname = "b2"\nhost = "h3"\n', "b.toml")
    write(tmp_path, "not toml at all [", "notes.txt")  # only *.toml files are read
    nodes = load_inventory(tmp_path)
    assert [n.name for n in nodes] == ["z-first-file", "b1", "b2"]
    assert nodes[0].source == str(tmp_path / "a.toml")


def test_defaults_stay_within_their_own_file(tmp_path: Path) -> None:
    write(tmp_path, '[defaults]\nuser = "bench"\n[[node]]\nname = "a"\nhost = "h1"\n', "a.toml")
    write(tmp_path, '[[node]]\nname = "b"\nhost = "h2"\n', "b.toml")
    a, b = load_inventory(tmp_path)
    assert (a.user, b.user) == ("bench", None)


def test_shipped_inventories_parse() -> None:
    example = load_inventory(REPO / "inventory" / "example-fleet.toml")
    assert len(example) >= 5
    assert {"rented", "owned", "laptop"} <= {tag for n in example for tag in n.tags}
    assert any(n.proxy_jump for n in example)
    assert all(n.python.endswith("/bin/python") for n in example)  # never the too-old CLT shim
    (local,) = load_inventory(REPO / "inventory" / "local.toml")
    assert (local.name, local.transport, local.python) == ("local", "local", sys.executable)


def test_embedded_local_inventory_is_the_same_bytes_as_the_repo_one() -> None:
    assert EMBEDDED_INVENTORY.read_bytes() == (REPO / "inventory" / "local.toml").read_bytes()


def test_resolve_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEET_TUI_INVENTORY", raising=False)
    assert resolve_inventory_path(None) == EMBEDDED_INVENTORY
    (tmp_path / "inventory").mkdir()
    write(tmp_path / "inventory", '[[node]]\nname = "a"\nhost = "h"\n', "local.toml")
    assert resolve_inventory_path(None) == Path("inventory/local.toml")
    monkeypatch.setenv("FLEET_TUI_INVENTORY", "/from/env")
    assert resolve_inventory_path(None) == Path("/from/env")
    assert resolve_inventory_path("given.toml") == Path("given.toml")


def test_load_without_path_uses_the_resolved_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLEET_TUI_INVENTORY", str(write(tmp_path, '[[node]]\nname = "env"\nhost = "h"\n')))
    assert [n.name for n in load_inventory()] == ["env"]


# --- round trip -------------------------------------------------------------------------------


def test_save_then_load_round_trips_the_example(tmp_path: Path) -> None:
    nodes = load_inventory(REPO / "inventory")
    out = tmp_path / "saved.toml"
    save_inventory(nodes, out)
    assert load_inventory(out) == nodes
    assert "python" not in out.read_text().split('name = "local"')[1]  # local default stays implicit


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1).filter(
    lambda s: s.strip() != ""
)
_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", fullmatch=True)
# Hosts, users and paths are checked at load (no shell syntax, no control characters).
_host = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}", fullmatch=True) | st.ip_addresses().map(str)
_user = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}", fullmatch=True)
_path = st.from_regex(r"[~/A-Za-z0-9_.][A-Za-z0-9_./ +-]{0,30}[A-Za-z0-9_./+-]", fullmatch=True)
_jump = st.builds(lambda u, h: f"{u}@{h}", _user, _name)
_price = st.none() | st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)


@st.composite
def _nodes(draw: st.DrawFn) -> list[Node]:
    names = draw(st.lists(_name, max_size=5, unique=True))
    nodes = []
    for name in names:
        transport: Transport = draw(st.sampled_from(["ssh", "local"]))
        nodes.append(
            Node(
                name=name,
                host=draw(_host),
                transport=transport,
                port=draw(st.none() | st.integers(1, 65535)),
                user=draw(st.none() | _user),
                identity_file=draw(st.none() | _path),
                python=draw(st.sampled_from([sys.executable if transport == "local" else "python3"]) | _path),
                tier=draw(st.none() | _text),
                hourly_usd=draw(_price),
                purchase_usd=draw(_price),
                tags=tuple(draw(st.lists(_text, max_size=3))),
                proxy_jump=draw(st.none() | _jump),
            )
        )
    return nodes


@settings(max_examples=60, deadline=None)
@given(nodes=_nodes())
def test_round_trip_property(tmp_path_factory: pytest.TempPathFactory, nodes: list[Node]) -> None:
    out = tmp_path_factory.mktemp("rt") / "inv.toml"
    save_inventory(nodes, out)
    assert load_inventory(out) == nodes


def test_save_refuses_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="duplicate node names \\['a'\\]"):
        save_inventory([Node("a", "h"), Node("a", "h2")], tmp_path / "x.toml")


# --- errors: one clear message naming file, node and field -------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '[[node]]\nname = "a"\nhost = "h"\nport = "22"\n',
            ":4: node 'a' (#1): field 'port' must be an integer, got string",
        ),
        (
            '[[node]]\nname = "a"\nhost = "h"\nport = 70000\n',
            "node 'a' (#1): field 'port' must be between 1 and 65535, got 70000",
        ),
        (
            '[[node]]\nname = "a"\nhost = "h"\nprot = 22\n',
            ":4: node 'a' (#1): unknown field 'prot' (did you mean 'port'?)",
        ),
        ('[[node]]\nname = "a"\n', ":1: node 'a' (#1): field 'host' is missing (required for ssh nodes)"),
        (
            '[[node]]\nname = "a"\nhost = "h"\ntransport = "telnet"\n',
            "node 'a' (#1): field 'transport' must be \"ssh\" or \"local\", got 'telnet'",
        ),
        (
            '[[node]]\nname = "a"\nhost = "h"\nhourly_usd = -1.5\n',
            "node 'a' (#1): field 'hourly_usd' must not be negative, got -1.5",
        ),
        (
            '[[node]]\nname = "a"\nhost = "h"\npurchase_usd = "cheap"\n',
            "node 'a' (#1): field 'purchase_usd' must be a number (US dollars), got string",
        ),
        (
            '[[node]]\nname = "a"\nhost = "h"\ntags = "rented"\n',
            "node 'a' (#1): field 'tags' must be an array of strings, got string",
        ),
        (
            '[[node]]\nname = "a"\nhost = "h"\ntags = ["x", 3]\n',
            "field 'tags' must be an array of non-empty strings; item 1 is integer",
        ),
        ('[[node]]\nname = "a"\nhost = "h"\nport = true\n', "field 'port' must be an integer, got boolean"),
        ('[[node]]\nhost = "h"\n', ":1: node #1: field 'name' is missing"),
        ('[[node]]\nname = "my node"\nhost = "h"\n', "field 'name': 'my node' is not a valid node name"),
        ('[[node]]\nname = "a"\nhost = ""\n', "node 'a' (#1): field 'host' must not be empty"),
        ('[defaults]\nusr = "x"\n', ":1: [defaults]: unknown field 'usr' (did you mean 'user'?)"),
        ('[defaults]\nhost = "x"\n', "[defaults]: field 'host' cannot have a default; set it per node"),
        ('[defaults]\nport = "22"\n', "[defaults]: field 'port' must be an integer, got string"),
        ('[node]\nname = "a"\nhost = "h"\n', "'node' must be an array of tables: write [[node]], not [node]"),
        ('[[nodes]]\nname = "a"\n', "unknown top-level key 'nodes' (did you mean 'node'?)"),
        (
            '[[node]]\nname = "a"\nhost = "h"\nport = \n',
            "TOML syntax error: Invalid value (at line 4, column 8)",
        ),
    ],
)
def test_malformed_inventory_gives_one_clear_error(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, body)
    message = load_error(path)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_second_node_is_named_by_name_and_index_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[node]]\nname = "a"\nhost = "h"\n\n[[node]]\nname = "b"\nhost = "h"\nuser = 7\n',
    )
    assert load_error(path) == f"{path}:8: node 'b' (#2): field 'user' must be a string, got integer"


def test_inline_node_tables_get_no_guessed_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'node = [{name = "a", host = "h"}, {name = "b", host = "h", port = "x"}]\n')
    assert load_error(path) == f"{path}: node 'b' (#2): field 'port' must be an integer, got string"


def test_duplicate_names_across_files_name_both_places(tmp_path: Path) -> None:
    write(tmp_path, '[[node]]\nname = "dup"\nhost = "h1"\n', "a.toml")
    write(tmp_path, '[[node]]\nname = "x"\nhost = "h2"\n[[node]]\nname = "dup"\nhost = "h3"\n', "b.toml")
    message = load_error(tmp_path)
    assert f"{tmp_path / 'b.toml'} node #2: field 'name': duplicate node name 'dup'" in message
    assert f"already defined in {tmp_path / 'a.toml'} node #1" in message


def test_duplicate_names_within_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[[node]]\nname = "d"\nhost = "h"\n[[node]]\nname = "d"\nhost = "h"\n')
    assert "duplicate node name 'd' (already defined in " + f"{path} node #1)" in load_error(path)


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    assert load_error(tmp_path / "nope.toml") == f"{tmp_path / 'nope.toml'}: inventory file not found"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_error(empty) == f"{empty}: inventory folder has no *.toml files"


def test_error_in_second_file_of_a_folder_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, '[[node]]\nname = "a"\nhost = "h"\n', "a.toml")
    bad = write(tmp_path, '[[node]]\nname = "b"\nhost = "h"\nhourly_usd = -2\n', "b.toml")
    assert load_error(tmp_path).startswith(f"{bad}:4: node 'b' (#1): field 'hourly_usd'")


# --- not a regular file ------------------------------------------------------------------------


@pytest.mark.timeout(20)
def test_a_fifo_inventory_is_refused_at_once(tmp_path: Path) -> None:
    # No writer ever opens it: a blocking read would wait forever.
    fifo = tmp_path / "fleet.toml"
    os.mkfifo(fifo)
    assert load_error(fifo) == f"{fifo}: cannot read inventory: a FIFO (named pipe), not a regular file"


@pytest.mark.timeout(20)
def test_a_fifo_in_an_inventory_folder_is_refused_not_skipped(tmp_path: Path) -> None:
    write(tmp_path, '[[node]]\nname = "a"\nhost = "h"\n', "a.toml")
    os.mkfifo(tmp_path / "b.toml")
    assert "b.toml: cannot read inventory: a FIFO" in load_error(tmp_path)


@pytest.mark.timeout(20)
def test_a_device_inventory_is_refused(tmp_path: Path) -> None:
    assert "a character device, not a regular file" in load_error(Path("/dev/zero"))


def test_an_oversized_inventory_is_refused(tmp_path: Path) -> None:
    from fleet_tui.config.files import MAX_CONFIG_BYTES

    big = write(tmp_path, "# " + "x" * MAX_CONFIG_BYTES + "\n")
    assert "larger than 8 MB" in load_error(big)


# --- shell syntax and control characters in hosts, users and paths ---------------------------

_HOSTILE = [
    "; rm -rf /tmp/x",
    "$(touch /tmp/pwned)",
    "`id`",
    "a\nb",
    "a\x1b[2Jb",
    "a|b",
    "-oProxyCommand=x",
    "a b",
]


_HOSTILE_CASES = [
    (key, value)
    for key in ("host", "user", "python", "proxy_jump", "identity_file")
    for value in _HOSTILE
    if not (key in ("python", "identity_file") and value == "a b")  # a space inside a path is fine
]


@pytest.mark.parametrize(("key", "value"), _HOSTILE_CASES)
def test_shell_syntax_or_control_characters_are_a_load_error_naming_file_line_and_field(
    tmp_path: Path, key: str, value: str
) -> None:
    body = {"host": "h.example", key: value}
    lines = "\n".join(f"{k} = {_toml_string(v)}" for k, v in body.items())
    path = write(tmp_path, f'[[node]]\nname = "a"\n{lines}\n')
    message = load_error(path)
    line = 3 if key == "host" else 4
    assert message.startswith(f"{path}:{line}: node 'a' (#1): field {key!r}: "), message
    assert repr(value)[:20] in message  # shown escaped: no raw newline or ESC reaches the terminal
    assert "\n" not in message and "\x1b" not in message


def _toml_string(value: str) -> str:
    return (
        '"'
        + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\x1b", "\\u001b")
        + '"'
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("host", "m1-a.example.internal"),
        ("host", "10.20.0.14"),
        ("host", "::1"),
        ("host", "fe80::1%en0"),
        ("host", "mini_alias"),
        ("user", "bench"),
        ("user", "first.last@corp"),
        ("python", "/Users/bench/.venvs/fleet/bin/python"),
        ("python", "/Users/Jane Doe/venv/bin/python3.12"),
        ("python", "python3"),
        ("identity_file", "~/.ssh/id_ed25519_fleet"),
        ("proxy_jump", "bench@bastion.example.internal"),
        ("proxy_jump", "bastion:2222"),
        ("proxy_jump", "a@jump1:22,jump2"),
        ("tier", "M2 Pro (rented; $0.65/h)"),
    ],
)
def test_legitimate_hosts_users_and_paths_load(tmp_path: Path, key: str, value: str) -> None:
    path = write(
        tmp_path,
        f'[[node]]\nname = "a"\nhost = "h"\n{key} = {_toml_string(value)}\n'.replace(
            'host = "h"\nhost', "host"
        ),
    )
    assert getattr(load_inventory(path)[0], key) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bench@[::1]:22", "IPv6 address cannot be written here"),
        ("bastion:99999", "port '99999' is not in 1-65535"),
        ("bad user@bastion", "user 'bad user' is not a user name"),
        ("a,,b", "host '' is not a host name"),
    ],
)
def test_a_bad_jump_host_names_the_hop(tmp_path: Path, value: str, expected: str) -> None:
    path = write(tmp_path, f'[[node]]\nname = "a"\nhost = "h"\nproxy_jump = "{value}"\n')
    assert expected in load_error(path)


def test_control_characters_in_tier_and_tags_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[[node]]\nname = "a"\nhost = "h"\ntier = "M1\\u001b[2J"\n')
    assert "field 'tier': 'M1\\x1b[2J' contains a control character" in load_error(path)
    path = write(tmp_path, '[[node]]\nname = "a"\nhost = "h"\ntags = ["ok", "x\\ny"]\n')
    assert "field 'tags': item 1 'x\\ny' contains a control character" in load_error(path)


def test_probe_with_a_hostile_inventory_exits_2_without_running_anything(tmp_path: Path) -> None:
    import subprocess

    marker = tmp_path / "pwned"
    path = write(tmp_path, f'[[node]]\nname = "a"\nhost = "h"\npython = "$(touch {marker})"\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleet_tui",
            "probe",
            "--inventory",
            str(path),
            "--db",
            str(tmp_path / "x.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "field 'python'" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


def test_kwh_usd_is_a_price_field(tmp_path: Path) -> None:
    path = tmp_path / "inv.toml"
    path.write_text('[[node]]\nname = "a"\nhost = "h"\nkwh_usd = 0.25\n')
    [node] = load_inventory(path)
    assert node.kwh_usd == 0.25
    save_inventory([node], path)
    assert load_inventory(path)[0].kwh_usd == 0.25
    path.write_text('[[node]]\nname = "a"\nhost = "h"\nkwh_usd = -1\n')
    with pytest.raises(InventoryError, match="field 'kwh_usd' must not be negative"):
        load_inventory(path)
