"""The Fleet screen against real sshd nodes and the local node, driven with Pilot.

Every test runs the real app: real SSH handshakes to loopback sshds, the real agent probing this
machine, a real known_hosts file. Waits are bounded (tests/tui/conftest.py), never bare sleeps.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.style import Style
from textual.color import Color
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Static

from fleet_tui.app.app import FleetApp
from fleet_tui.app.messages import HostKeyTrusted, NodeProbed
from fleet_tui.app.screens.fleet import FleetScreen
from fleet_tui.app.screens.hostkey import HostKeyDialog
from fleet_tui.app.state import PROBING, clip
from fleet_tui.app.widgets.node_detail import NodeDetail
from fleet_tui.app.widgets.node_table import CHIP_WIDTH, COLUMNS, NodeTable
from fleet_tui.config.inventory import Node
from fleet_tui.fleet.transport.base import SshSettings
from node_agent.facts import collect_facts

Settle = Callable[[Pilot[Any]], Awaitable[None]]
WaitUntil = Callable[[Pilot[Any], Callable[[], bool], str], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)

SIZE = (160, 40)


def screen_of(app: FleetApp) -> FleetScreen:
    """The fleet screen, even while a dialog is on top of it."""
    for candidate in app.screen_stack:
        if isinstance(candidate, FleetScreen):
            return candidate
    raise AssertionError(f"no FleetScreen in {app.screen_stack}")


def cell(app: FleetApp, node: str, column: str) -> str:
    return screen_of(app).query_one(NodeTable).get_cell(node, column).plain


def detail_text(app: FleetApp) -> str:
    return str(screen_of(app).query_one(NodeDetail).content)


def select(app: FleetApp, node: str) -> None:
    table = screen_of(app).query_one(NodeTable)
    table.move_cursor(row=table.get_row_index(node))


def host_fingerprint(pub_file: Path) -> str:
    """The SHA256 fingerprint as OpenSSH computes it: an oracle independent of asyncssh."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub_file)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


@pytest.fixture
def blackhole() -> Iterator[tuple[str, int]]:
    """A TCP port that accepts connections but never speaks SSH (a wedged machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()


@pytest.mark.sshd
async def test_rows_show_chip_and_ok_for_every_node(
    sshd_fleet: Any, local_node: Node, settle: Settle
) -> None:
    """Rows exist from the inventory at once ("probing…"), then each shows its chip and ok."""
    fleet = sshd_fleet(2)
    nodes = [*fleet.nodes, local_node]
    messages: list[Message] = []
    app = FleetApp(nodes, fleet.settings)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        table = screen_of(app).query_one(NodeTable)
        assert table.row_count == len(nodes)
        assert [cell(app, n.name, "status") for n in nodes] == [PROBING] * len(nodes)
        await settle(pilot)

        # This machine is every node here, so the in-process facts are the oracle for the chip.
        expected_chip = clip(str(collect_facts()["chip"]), CHIP_WIDTH)
        for node in nodes:
            assert cell(app, node.name, "status") == "ok", detail_text(app)
            assert cell(app, node.name, "chip") == expected_chip
            assert cell(app, node.name, "memory").endswith("GiB")
            assert "None" not in [cell(app, node.name, key) for key, _ in COLUMNS]
        # The hook sees a message once per node it bubbles through; one message per node probed.
        probed = {id(m): m for m in messages if isinstance(m, NodeProbed)}.values()
        assert sorted(m.result.node.name for m in probed) == sorted(n.name for n in nodes)
        assert app.screen.sub_title == f"{len(nodes)} nodes · {len(nodes)} ok · 0 failed"

        # A refresh puts every row back to "probing…" at once (before any worker runs) ...
        screen_of(app).action_refresh()
        assert [cell(app, n.name, "status") for n in nodes] == [PROBING] * len(nodes)
        assert app.screen.sub_title.endswith(f"· {len(nodes)} probing")
        # ... and each comes back ok.
        await settle(pilot)
        assert [cell(app, n.name, "status") for n in nodes] == ["ok"] * len(nodes)

        # Cell colours follow the theme (no hard-coded colours): switch it, the cells follow.
        app.theme = "nord"
        await pilot.pause()
        ok_style = screen_of(app).query_one(NodeTable).get_cell(nodes[0].name, "status").style
        assert isinstance(ok_style, Style) and ok_style.color is not None
        assert ok_style.color.triplet == Color.parse(app.theme_variables["success"]).rich_color.triplet


async def test_status_stays_in_view_on_a_narrow_terminal(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    """At 100 columns the table scrolls sideways; the status (ok / the error kind) must not."""
    app = FleetApp([local_node], SshSettings(known_hosts=tmp_path / "known_hosts", ssh_config=None))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = screen_of(app).query_one(NodeTable)
        assert cell(app, local_node.name, "status") == "ok"
        right_edge = 0
        for column in table.ordered_columns:
            right_edge += column.get_render_width(table)
            if column.key.value == "status":
                break
        assert right_edge <= table.scrollable_content_region.width, (right_edge, table.size)


@pytest.mark.sshd
async def test_each_row_updates_as_its_node_answers(
    sshd_fleet: Any, blackhole: tuple[str, int], settle: Settle, wait_until: WaitUntil
) -> None:
    """A wedged node does not hold back the others; it ends as "timeout" with its message shown."""
    fleet = sshd_fleet(1)
    host, port = blackhole
    wedged = Node(name="wedged", host=host, port=port, user="root", python=sys.executable)
    settings = dataclasses.replace(fleet.settings, connect_timeout=3.0)
    app = FleetApp([fleet.nodes[0], wedged], settings)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: cell(app, "ssh0", "status") == "ok", "ssh0 ok")
        assert cell(app, "wedged", "status") == PROBING
        await settle(pilot)
        assert cell(app, "wedged", "status") == "timeout"
        select(app, "wedged")
        await pilot.pause()
        assert "timeout" in detail_text(app)
        assert app.screen.sub_title == "2 nodes · 1 ok · 1 failed"


@pytest.mark.sshd
async def test_killed_node_is_unreachable_and_refresh_recovers(sshd_fleet: Any, settle: Settle) -> None:
    """A killed sshd shows unreachable (message in the detail); after a restart, r makes it ok.

    The kill happens before the first probe: SshdFleet.kill leaves already-open sessions alive
    (sshd puts each connection in its own session), so a warm connection would survive it.
    """
    fleet = sshd_fleet(2)
    fleet.kill(1)
    app = FleetApp(fleet.nodes, fleet.settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert cell(app, "ssh0", "status") == "ok"
        assert cell(app, "ssh1", "status") == "unreachable"
        assert cell(app, "ssh1", "chip") == "—"
        assert app.screen.sub_title == "2 nodes · 1 ok · 1 failed"
        select(app, "ssh1")
        await pilot.pause()
        assert "unreachable" in detail_text(app) and fleet.nodes[1].host in detail_text(app)
        first = screen_of(app).states["ssh0"].result
        assert first is not None and first.deploy is not None
        assert app.connections.is_warm(fleet.nodes[0])

        fleet.restart(1)
        await pilot.press("r")
        await settle(pilot)
        assert [cell(app, n.name, "status") for n in fleet.nodes] == ["ok", "ok"]
        # Warm: the re-probe of ssh0 reused its session's connection and deployed agent.
        again = screen_of(app).states["ssh0"].result
        assert again is not None and again is not first and again.deploy is not None
        assert (again.deploy.status, again.deploy.remote_path) == ("present", first.deploy.remote_path)
        assert cell(app, "ssh0", "agent").endswith("present")
        assert app.connections.is_warm(fleet.nodes[0])
    assert not app.connections.is_warm(fleet.nodes[0]), "connections are closed when the app exits"


def _unknown_key_app(fleet: Any) -> tuple[FleetApp, Path]:
    known_hosts = fleet.empty_known_hosts()
    settings = dataclasses.replace(fleet.settings, known_hosts=known_hosts)
    return FleetApp(fleet.nodes, settings), known_hosts


@pytest.mark.sshd
async def test_unknown_host_key_trusted_after_confirm(
    sshd_fleet: Any, settle: Settle, wait_until: WaitUntil
) -> None:
    """t opens the dialog with the right fingerprint; y writes known_hosts and the node turns ok."""
    fleet = sshd_fleet(1)
    app, known_hosts = _unknown_key_app(fleet)
    fingerprint = host_fingerprint(fleet.sshds[0].root / "ssh_host_ed25519_key.pub")
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        assert cell(app, "ssh0", "status") == "host_key_unknown"
        assert fingerprint in detail_text(app)

        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, HostKeyDialog), "the host key dialog")
        dialog = app.screen
        assert isinstance(dialog, HostKeyDialog)
        assert dialog.fingerprint == fingerprint
        body = str(dialog.query_one("#hostkey-body", Static).content)
        assert fingerprint in body and fleet.sshds[0].address in body and str(fleet.sshds[0].port) in body

        await pilot.press("y")
        await wait_until(pilot, lambda: cell(app, "ssh0", "status") == "ok", "ssh0 ok after trust")
        assert fleet.sshds[0].known_hosts_line() in known_hosts.read_text()
        trusted = {id(m): m for m in messages if isinstance(m, HostKeyTrusted)}.values()
        assert [m.fingerprint for m in trusted] == [fingerprint]


@pytest.mark.sshd
async def test_unknown_host_key_declined_changes_nothing(
    sshd_fleet: Any, settle: Settle, wait_until: WaitUntil
) -> None:
    """n closes the dialog; the node stays refused and known_hosts stays empty."""
    fleet = sshd_fleet(1)
    app, known_hosts = _unknown_key_app(fleet)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, HostKeyDialog), "the host key dialog")
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, FleetScreen)
        assert cell(app, "ssh0", "status") == "host_key_unknown"
        assert known_hosts.read_text() == ""


@pytest.mark.sshd
async def test_changed_host_key_is_never_offered_for_trust(sshd_fleet: Any, settle: Settle) -> None:
    """A changed key shows the MITM warning and what to do; t opens no dialog, writes nothing."""
    fleet = sshd_fleet(1)
    wrong = fleet.wrong_known_hosts()
    before = wrong.read_text()
    from textual.notifications import Notify

    app = FleetApp(fleet.nodes, dataclasses.replace(fleet.settings, known_hosts=wrong))
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        assert cell(app, "ssh0", "status") == "host_key_changed"
        text = detail_text(app)
        assert "CHANGED" in text and "man-in-the-middle" in text and "ssh-keygen -R" in text
        await pilot.press("t")
        await settle(pilot)
        assert isinstance(app.screen, FleetScreen)
        # Not silent: t says why it does nothing on this row.
        said = [m.notification.message for m in messages if isinstance(m, Notify)]
        assert any("ssh0 did not offer an unknown host key (host_key_changed)" in m for m in said), said
        assert wrong.read_text() == before


@pytest.mark.sshd
async def test_accept_new_host_keys_trusts_on_first_use(sshd_fleet: Any, settle: Settle) -> None:
    """With --accept-new-host-keys an unknown key is trusted (as headless) and the node is ok."""
    fleet = sshd_fleet(1)
    known_hosts = fleet.empty_known_hosts()
    settings = dataclasses.replace(fleet.settings, known_hosts=known_hosts, accept_new_host_keys=True)
    app = FleetApp(fleet.nodes, settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert cell(app, "ssh0", "status") == "ok"
        assert fleet.sshds[0].known_hosts_line() in known_hosts.read_text()
        # Accepted without a dialog, but never silently: the fingerprint is in the detail panel.
        fingerprint = host_fingerprint(fleet.sshds[0].root / "ssh_host_ed25519_key.pub")
        assert "accepted on first use" in detail_text(app) and fingerprint in detail_text(app)


@pytest.mark.sshd
async def test_a_known_hosts_write_failure_is_shown_not_swallowed(
    sshd_fleet: Any, settle: Settle, wait_until: WaitUntil
) -> None:
    """The operator agrees, but known_hosts cannot be written (here: it became a directory): the
    error is shown for that node, naming the path and what is wrong with it; nothing is trusted."""
    from textual.notifications import Notify

    fleet = sshd_fleet(1)
    app, known_hosts = _unknown_key_app(fleet)
    messages: list[Message] = []
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, HostKeyDialog), "the host key dialog")
        known_hosts.unlink()
        known_hosts.mkdir()
        await pilot.press("y")

        def shown() -> list[str]:
            return [
                f"{m.notification.title}: {m.notification.message}" for m in messages if isinstance(m, Notify)
            ]

        await wait_until(pilot, lambda: any(str(known_hosts) in text for text in shown()), "the error")
        error = next(text for text in shown() if str(known_hosts) in text)
        assert "ssh0" in error and "a directory" in error, error
        await settle(pilot)
        assert cell(app, "ssh0", "status") == "host_key_unknown"
        assert not any(isinstance(m, HostKeyTrusted) for m in messages)
