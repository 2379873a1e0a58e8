"""The trust-on-first-use dialog: show a node's host key fingerprint and ask before trusting it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Label, Static

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node
    from fleet_tui.fleet.transport.base import SshSettings


class HostKeyDialog(ModalScreen[bool]):
    """Ask whether to trust a node's SSH host key. Dismisses with True only on an explicit yes.

    "No" has the focus, so a stray Enter never trusts a key: the operator has to press y or
    click "Trust" after reading the fingerprint.
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Trust"),
        Binding("n,escape", "answer(False)", "Cancel"),
    ]

    def __init__(
        self,
        *,
        node_name: str,
        host: str,
        port: int,
        key_type: str,
        fingerprint: str,
        known_hosts: Path,
    ) -> None:
        super().__init__()
        self.node_name = node_name
        self.host = host
        self.port = port
        self.key_type = key_type
        self.fingerprint = fingerprint
        self.known_hosts = known_hosts

    def compose(self) -> ComposeResult:
        target = str(self.known_hosts)
        with Grid(id="hostkey-dialog"):
            yield Label(
                Content.from_markup("Trust the host key of [b]$name[/b]?", name=self.node_name),
                id="hostkey-title",
            )
            yield Static(
                Content.from_markup(
                    "host         $host\nport         $port\nkey type     $key_type\n"
                    "fingerprint  [b]$fp[/b]\n\n"
                    "This key has never been seen. Compare the fingerprint with the one the\n"
                    "machine reports (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).\n"
                    "Trusting appends it to $target.",
                    host=self.host,
                    port=str(self.port),
                    key_type=self.key_type,
                    fp=self.fingerprint,
                    target=target,
                ),
                id="hostkey-body",
            )
            with Horizontal(id="hostkey-buttons"):
                yield Button("Trust (y)", variant="warning", id="hostkey-yes")
                yield Button("Cancel (n)", variant="primary", id="hostkey-no")
        # The dialog's own footer: the screen's keys underneath do not apply while it is open.
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#hostkey-no", Button).focus()

    @on(Button.Pressed, "#hostkey-yes")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#hostkey-no")
    def _no(self) -> None:
        self.dismiss(False)

    def action_answer(self, trust: bool) -> None:
        self.dismiss(trust)


async def review_and_trust(app: App[Any], node: Node, settings: SshSettings) -> str:
    """Fetch `node`'s host key, show it in the dialog and trust it only on an explicit yes.

    Returns what happened, in words, for the caller to show ("trusted SHA256:…", "not trusted").
    The key is fetched afresh so the dialog shows exactly the key that will be written; a key
    that changed meanwhile is never overwritten.
    """
    from fleet_tui.fleet.transport.base import NodeError
    from fleet_tui.fleet.transport.hostkeys import fetch_host_key, trust_host_key

    try:
        offered = await fetch_host_key(node, settings)
    except NodeError as exc:
        return f"could not fetch the host key: {exc.message}"
    known_hosts = settings.known_hosts_path()
    trusted = await app.push_screen_wait(
        HostKeyDialog(
            node_name=node.name,
            host=offered.host,
            port=offered.port,
            key_type=offered.key_type,
            fingerprint=offered.fingerprint,
            known_hosts=known_hosts,
        )
    )
    if not trusted:
        return "host key not trusted; nothing was written"
    try:
        await trust_host_key(offered, known_hosts)
    except NodeError as exc:
        return f"not trusted: {exc.message}"
    return f"trusted {offered.fingerprint}"
