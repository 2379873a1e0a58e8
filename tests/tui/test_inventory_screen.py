"""The Inventory screen, driven with Pilot: validation as you type (errors name the field), add
and remove, a save that keeps the file's other keys, and Test connection against a real sshd
with the host-key dialog showing the fingerprint."""

from __future__ import annotations

import dataclasses
import subprocess
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from fleet_tui.app.app import FleetApp
from fleet_tui.app.screens.fleet import FleetScreen
from fleet_tui.app.screens.hostkey import HostKeyDialog
from fleet_tui.app.screens.inventory import InventoryScreen, editable_path
from fleet_tui.config.inventory import EMBEDDED_INVENTORY, load_inventory, save_inventory
from fleet_tui.fleet.transport.base import SshSettings

Settle = Callable[[Pilot[Any]], Awaitable[None]]
WaitUntil = Callable[[Pilot[Any], Callable[[], bool], str], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)

INVENTORY = """\
[defaults]
user = "bench"

[[node]]
name = "nowhere"
host = "127.0.0.1"
port = 9
tier = "M1"

[[node]]
name = "elsewhere"
host = "127.0.0.1"
port = 9
"""


def app_on(path: Path, tmp_path: Path, settings: SshSettings | None = None) -> FleetApp:
    settings = settings or SshSettings(known_hosts=tmp_path / "known_hosts", ssh_config=None)
    return FleetApp(path, settings)


def error_of(screen: InventoryScreen) -> str | None:
    """The screen's current validation error (a call, so each check reads it afresh)."""
    return screen.error


def text_of(screen: InventoryScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def open_inventory(pilot: Pilot[Any], settle: Settle) -> InventoryScreen:
    await settle(pilot)
    await pilot.press("i")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, InventoryScreen)
    return screen


async def type_into(pilot: Pilot[Any], field: str, text: str) -> None:
    box = pilot.app.screen.query_one(f"#field-{field}", Input)
    box.focus()
    box.value = ""
    await pilot.pause()
    await pilot.press(*text)
    await pilot.pause()


async def test_a_bad_field_is_named_as_you_type_and_blocks_the_save(tmp_path: Path, settle: Settle) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(INVENTORY)
    original = path.read_text()
    app = app_on(path, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_inventory(pilot, settle)
        assert screen.query_one("#inventory-nodes", DataTable).row_count == 2
        assert screen.query_one("#field-name", Input).value == "nowhere"
        assert screen.query_one("#field-user", Input).placeholder == "default: bench"
        assert error_of(screen) is None

        await type_into(pilot, "port", "22x")
        error = error_of(screen)
        assert error is not None and "field 'port' must be an integer" in error
        assert str(path) in text_of(screen, "#inventory-error")
        assert screen.query_one("#field-port", Input).has_class("field-invalid")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert path.read_text() == original, "an invalid inventory is never written"

        await pilot.press("backspace")
        await pilot.pause()
        assert error_of(screen) is None
        assert not screen.query_one("#field-port", Input).has_class("field-invalid")
        await type_into(pilot, "tier", "M1 Max")
        await pilot.press("ctrl+s")
        await pilot.pause()
    saved = tomllib.loads(path.read_text())
    assert saved["defaults"] == {"user": "bench"}
    assert saved["node"][0] == {"name": "nowhere", "host": "127.0.0.1", "port": 22, "tier": "M1 Max"}
    assert saved["node"][1] == tomllib.loads(INVENTORY)["node"][1]
    assert [n.port for n in load_inventory(path)] == [22, 9]
    assert app.nodes == load_inventory(path)


async def test_add_then_remove_nodes_and_save(tmp_path: Path, settle: Settle) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(INVENTORY)
    app = app_on(path, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_inventory(pilot, settle)
        await pilot.press("a")
        await pilot.pause()
        assert len(screen.tables) == 3 and screen.tables[2]["name"] == "node-1"
        error = error_of(screen)
        assert error is not None and "field 'host'" in error  # not filled in yet
        assert app.focused is screen.query_one("#field-host")
        await type_into(pilot, "host", "m4-host")
        assert error_of(screen) is None
        await pilot.press("escape")  # back to the node list
        await pilot.pause()
        assert app.focused is screen.query_one("#inventory-nodes")
        await pilot.press("up", "up")  # onto "nowhere"
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
        assert [t["name"] for t in screen.tables] == ["elsewhere", "node-1"]
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("f")  # the Fleet screen is rebuilt from the saved nodes
        await pilot.pause()  # its rows exist at once; their probes need not finish here
        fleet = app.screen
        assert isinstance(fleet, FleetScreen) and list(fleet.states) == ["elsewhere", "node-1"]
    nodes = load_inventory(path)
    assert [(n.name, n.host, n.user) for n in nodes] == [
        ("elsewhere", "127.0.0.1", "bench"),
        ("node-1", "m4-host", "bench"),
    ]


def test_what_can_be_edited(tmp_path: Path) -> None:
    assert editable_path(None)[0] is None
    assert editable_path(tmp_path)[0] is None  # a folder of files
    target, note = editable_path(EMBEDDED_INVENTORY)
    assert target == Path("inventory") / "local.toml" and "read-only" in note
    assert editable_path(tmp_path / "a.toml")[0] == tmp_path / "a.toml"


def host_fingerprint(pub_file: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub_file)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


@pytest.mark.sshd
async def test_test_connection_offers_the_unknown_key_then_connects(
    sshd_fleet: Any, tmp_path: Path, settle: Settle, wait_until: WaitUntil
) -> None:
    fleet = sshd_fleet(1)
    known_hosts = fleet.empty_known_hosts()
    settings = dataclasses.replace(fleet.settings, known_hosts=known_hosts)
    path = tmp_path / "fleet.toml"
    save_inventory(fleet.nodes, path)
    fingerprint = host_fingerprint(fleet.sshds[0].root / "ssh_host_ed25519_key.pub")
    app = app_on(path, tmp_path, settings)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_inventory(pilot, settle)
        await pilot.press("ctrl+t")
        await wait_until(pilot, lambda: isinstance(app.screen, HostKeyDialog), "the host key dialog")
        dialog = app.screen
        assert isinstance(dialog, HostKeyDialog) and dialog.fingerprint == fingerprint
        await pilot.press("y")
        await settle(pilot)
        assert app.screen is screen
        status = text_of(screen, "#inventory-status")
        assert status.startswith(f"{fleet.nodes[0].name}: ok"), status
        assert fleet.sshds[0].known_hosts_line() in known_hosts.read_text()
