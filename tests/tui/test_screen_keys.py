"""Every key the Run detail and Inventory screens list in their help does something: it changes
the screen, the mode, the focus or the screen's own state, starts a worker or posts a notice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import export_fixture
import pytest
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import TabbedContent
from textual.worker import Worker, WorkerState

from fleet_tui.app.app import FleetApp
from fleet_tui.app.screens.help import HelpScreen, help_entries
from fleet_tui.app.screens.inventory import InventoryScreen
from fleet_tui.app.screens.run_detail import RunDetailScreen
from fleet_tui.config.inventory import Node
from fleet_tui.fleet.transport.base import SshSettings

Settle = Callable[[Pilot[Any]], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)


def observable(app: FleetApp, messages: list[Message]) -> tuple[object, ...]:
    screen = app.screen
    own: object = None
    if isinstance(screen, RunDetailScreen):
        own = screen.query_one(TabbedContent).active
    elif isinstance(screen, InventoryScreen):
        own = (len(screen.tables), screen.dirty)
    notices = sum(isinstance(m, Notify) for m in messages)
    started = sum(isinstance(m, Worker.StateChanged) and m.state is WorkerState.RUNNING for m in messages)
    return (screen, app.current_mode, app.focused, own, notices, started)


def current(app: FleetApp) -> Screen[Any]:
    return app.screen


async def walk(
    pilot: Pilot[Any], app: FleetApp, mode: str, messages: list[Message], settle: Settle
) -> set[str]:
    """Press each of the screen's own listed keys from the screen; returns the keys walked."""
    screen: Screen[Any] = app.screen
    await pilot.press("question_mark")
    await pilot.pause()
    assert isinstance(app.screen, HelpScreen)
    assert {(e.key, e.description) for e in app.screen.entries} == {
        (e.key, e.description) for e in help_entries(screen)
    }
    await pilot.press("escape")
    await pilot.pause()
    keys = [
        b.key
        for node, b, enabled, _t in screen.active_bindings.values()
        if enabled and b.description and b.show and node is screen
    ]
    for key in keys:
        before = observable(app, messages)
        await pilot.press(key)
        await pilot.pause()
        assert observable(app, messages) != before, f"key {key!r} did nothing on {type(screen).__name__}"
        while (shown := current(app)) is not screen and (isinstance(shown, HelpScreen) or shown.is_modal):
            await pilot.press("escape")
        await settle(pilot)
        if app.current_mode != mode:
            await app.switch_mode(mode)
            await settle(pilot)
        screen.set_focus(screen.query("DataTable").first())  # never left typing into a field
        await pilot.pause()
    return set(keys)


async def test_every_run_detail_key_does_something(tmp_path: Path, settle: Settle) -> None:
    db = tmp_path / "fixture.db"
    export_fixture.build(db, nodes=export_fixture.NODES[:2], runs=1, samples_per_run=60).store.close()
    refused = Node(name="nowhere", host="127.0.0.1", port=9, source="test")
    app = FleetApp([refused], SshSettings(known_hosts=tmp_path / "kh", ssh_config=None), db_path=db)
    messages: list[Message] = []
    async with app.run_test(size=(120, 36), message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert await walk(pilot, app, "run_detail", messages, settle) == {"p", "r", "o"}


async def test_every_inventory_key_does_something(tmp_path: Path, settle: Settle) -> None:
    path = tmp_path / "fleet.toml"
    node = '[[node]]\nname = "{}"\nhost = "127.0.0.1"\nport = 9\n'
    path.write_text(node.format("a") + "\n" + node.format("b"))
    app = FleetApp(path, SshSettings(known_hosts=tmp_path / "kh", ssh_config=None))
    messages: list[Message] = []
    async with app.run_test(size=(120, 36), message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, InventoryScreen)
        walked = await walk(pilot, app, "inventory", messages, settle)
        assert walked == {"a", "x", "ctrl+t", "ctrl+s"}
