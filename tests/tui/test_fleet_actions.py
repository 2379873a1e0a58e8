"""Fleet screen actions on the local node and a node nothing listens for: totals, filter, sort,
probe one node, auto-refresh."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.widgets import Input, Static

from fleet_tui.app.app import FleetApp
from fleet_tui.app.screens.fleet import FleetScreen
from fleet_tui.app.widgets.node_table import NodeTable
from fleet_tui.config.inventory import Node
from fleet_tui.fleet.transport.base import SshSettings

Settle = Callable[[Pilot[Any]], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)


def two_node_app(local_node: Node, tmp_path: Path) -> FleetApp:
    priced_local = Node(
        name=local_node.name,
        host=local_node.host,
        transport="local",
        python=local_node.python,
        hourly_usd=0.5,
        tier="here",
        source="test",
    )
    refused = Node(name="zz-nowhere", host="127.0.0.1", port=9, hourly_usd=1.25, source="test")
    return FleetApp([refused, priced_local], SshSettings(known_hosts=tmp_path / "kh", ssh_config=None))


def rows(screen: FleetScreen) -> list[str]:
    table = screen.query_one(NodeTable)
    return [str(table.coordinate_to_cell_key(Coordinate(i, 0)).row_key.value) for i in range(table.row_count)]


async def test_totals_filter_sort_probe_and_auto_refresh(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    app = two_node_app(local_node, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        chip = str(screen.states["local"].facts["chip"])
        totals = str(screen.query_one("#fleet-totals", Static).render())
        assert "1 up · 1 failed" in totals and "fleet $1.75/h" in totals
        assert chip[:20] in totals and "×1" in totals

        assert rows(screen) == ["zz-nowhere", "local"]  # inventory order
        await pilot.press("s")  # by name, then status? first press moves to status
        await pilot.pause()
        assert screen.sort_key == "status"
        assert rows(screen)[0] == "local"  # "ok" sorts before "unreachable"/"refused"

        await pilot.press("slash")
        await pilot.pause()
        box = screen.query_one("#fleet-filter", Input)
        assert box.display and box.has_focus
        await pilot.press("l", "o", "c", "enter")
        await pilot.pause()
        assert rows(screen) == ["local"]
        assert "filter 'loc'" in str(screen.query_one("#fleet-totals", Static).render())

        before = screen.states["local"].result
        await pilot.press("p")
        await settle(pilot)
        assert screen.states["local"].result is not before  # probed again

        await pilot.press("a")
        await pilot.pause()
        assert screen.refresh_every_s == 30 and screen._refresh_timer is not None
        await pilot.press("a", "a", "a")
        await pilot.pause()
        assert screen.refresh_every_s == 0 and screen._refresh_timer is None


async def test_deploy_and_selftest_the_selected_node(
    local_node: Node, settle: Settle, wait_until: Any, tmp_path: Path
) -> None:
    """d uploads the agent to the node under the cursor and x runs its selftest: each outcome is
    said in a notification and kept in the detail pane; on a node nothing listens for, the
    failure is said the same way (never raised, never silent)."""
    from fleet_tui.app.messages import NodeActionDone
    from fleet_tui.app.widgets.node_detail import NodeDetail

    done: list[NodeActionDone] = []

    def keep(message: object) -> None:
        if isinstance(message, NodeActionDone):
            done.append(message)

    app = two_node_app(local_node, tmp_path)
    async with app.run_test(size=(120, 40), message_hook=keep) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        table = screen.query_one(NodeTable)
        table.move_cursor(row=table.get_row_index("local"))
        await pilot.press("d")
        await wait_until(pilot, lambda: any(m.action == "deploy" for m in done), "the deploy outcome")
        deploy = next(m for m in done if m.action == "deploy")
        assert deploy.ok and deploy.name == "local"
        assert deploy.text.startswith(("uploaded", "already present")) and "bytes" in deploy.text
        await pilot.press("x")
        await wait_until(pilot, lambda: any(m.action == "selftest" for m in done), "the selftest outcome")
        selftest = next(m for m in done if m.action == "selftest")
        assert " pass, " in selftest.text and " skipped" in selftest.text
        await settle(pilot)
        detail = str(screen.query_one(NodeDetail).render())
        assert f"deploy {deploy.text}" in detail and f"selftest {selftest.text}" in detail

        table.move_cursor(row=table.get_row_index("zz-nowhere"))
        await pilot.press("x")
        await wait_until(
            pilot, lambda: any(m.name == "zz-nowhere" for m in done), "the refused node's outcome"
        )
        refused = next(m for m in done if m.name == "zz-nowhere")
        assert not refused.ok and refused.text.startswith("unreachable")
