"""TUI basics on the local node: every key says or does something, help is generated from the
bindings, the name column stays at 80x24, and a dialog's footer shows the dialog's keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer
from textual.worker import Worker, WorkerState

from fleet_tui.app.app import FleetApp
from fleet_tui.app.navigation import DESTINATIONS
from fleet_tui.app.screens.fleet import FleetScreen
from fleet_tui.app.screens.help import HelpScreen, help_entries
from fleet_tui.app.screens.hostkey import HostKeyDialog
from fleet_tui.app.widgets.node_table import NodeTable
from fleet_tui.config.inventory import Node
from fleet_tui.fleet.transport.base import SshSettings

Settle = Callable[[Pilot[Any]], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)


def local_app(local_node: Node, tmp_path: Path) -> FleetApp:
    return FleetApp([local_node], SshSettings(known_hosts=tmp_path / "known_hosts", ssh_config=None))


def notices(messages: list[Message]) -> list[str]:
    return [m.notification.message for m in messages if isinstance(m, Notify)]


def observable(app: FleetApp, messages: list[Message]) -> tuple[object, ...]:
    """What a key press can change: the screen, mode, focus, notices and workers started."""
    return (app.screen, app.current_mode, app.focused, len(notices(messages)), workers_started(messages))


def workers_started(messages: list[Message]) -> int:
    """Workers that reached RUNNING, finished or not (a fast probe is over before we look)."""
    return sum(isinstance(m, Worker.StateChanged) and m.state is WorkerState.RUNNING for m in messages)


async def test_t_on_the_local_node_says_why_it_does_nothing(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    app = local_app(local_node, tmp_path)
    messages: list[Message] = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
        assert any("local is the local node: it has no SSH host key" in m for m in notices(messages))
        assert not (tmp_path / "known_hosts").exists()


async def test_name_column_stays_fixed_at_80x24(local_node: Node, settle: Settle, tmp_path: Path) -> None:
    app = local_app(local_node, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(NodeTable)
        assert table.fixed_columns == 1
        assert table.ordered_columns[0].key.value == "name"
        table.scroll_to(x=table.max_scroll_x, animate=False)
        await pilot.pause()
        assert table.scroll_x > 0  # the table really is wider than 80 columns
        # The name column is drawn at x=0 whatever the scroll: its cell text is on screen.
        line = table.render_line(table.header_height if table.show_header else 0).text
        assert line.lstrip().startswith("local"), line


async def test_a_dialog_footer_shows_the_dialog_keys(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    app = local_app(local_node, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.push_screen(
            HostKeyDialog(
                node_name="n",
                host="h",
                port=22,
                key_type="ssh-ed25519",
                fingerprint="SHA256:x",
                known_hosts=tmp_path / "known_hosts",
            )
        )
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, HostKeyDialog)
        assert dialog.query(Footer), "the dialog has its own footer"
        keys = {binding.key for _node, binding, _on, _tip in dialog.active_bindings.values()}
        assert {"y", "n"} <= keys and "r" not in keys and "t" not in keys


async def test_help_lists_every_binding_and_each_key_does_something(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    """? lists the screen's and the app's bindings (generated); pressing each one changes the
    screen, the mode, starts a worker, posts a notice or exits."""
    app = local_app(local_node, tmp_path)
    messages: list[Message] = []
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await settle(pilot)
        fleet = app.screen
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = {(e.key, e.description) for e in app.screen.entries}
        expected = {(e.key, e.description) for e in help_entries(fleet)}
        assert shown == expected
        listed = {e.description for e in app.screen.entries}
        assert {"Refresh", "Trust host key", "Help", "Quit"} <= listed
        assert {d.title for d in DESTINATIONS} <= listed
        table = app.screen.query_one("#help-table", DataTable)
        assert table.row_count == len(app.screen.entries)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is fleet

        # Fleet-tui's own keys (the screen's and the app's); the table's cursor keys are Textual's.
        keys = [
            b.key
            for node, b, enabled, _t in fleet.active_bindings.values()
            if enabled and b.description and b.show and (node is fleet or node is app)
        ]
        assert {"r", "t", "question_mark", "q"} <= set(keys)
        keys.sort(key=lambda k: k == "q")  # quit last
        for key in keys:
            before = (
                app.screen,
                app.current_mode,
                app.focused,
                len(notices(messages)),
                workers_started(messages),
            )
            await pilot.press(key)
            await pilot.pause()
            after = (
                app.screen,
                app.current_mode,
                app.focused,
                len(notices(messages)),
                workers_started(messages),
            )
            if key == "q":
                break
            assert after != before, f"key {key!r} did nothing"
            # Back to the fleet screen for the next key.
            while isinstance(app.screen, HelpScreen):
                await pilot.press("escape")
            app.switch_mode("fleet")
            await settle(pilot)
            fleet.query_one(NodeTable).focus()
            await pilot.pause()
    assert app.return_code == 0, "q quit the app"


async def test_command_palette_offers_every_screen_and_every_key(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    from fleet_tui.app.commands import FleetCommands

    app = local_app(local_node, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        fleet = app.screen
        provider = FleetCommands(fleet)
        names = [name for name, _help, _run in provider._commands()]
        assert {f"Open {d.title}" for d in DESTINATIONS if d.name != "fleet"} <= set(names)
        for _node, binding, enabled, _tip in fleet.active_bindings.values():
            if enabled and binding.description and binding.show and "open_screen" not in binding.action:
                assert binding.description in names, binding
        # Running an entry does what its key does: "Open Runs" switches to the Runs screen.
        run = {name: go for name, _help, go in provider._commands()}["Open Runs"]
        run()
        await settle(pilot)
        assert app.current_mode == "runs"
