"""`?`: every binding of the screen underneath and of the app, read from the bindings themselves."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Label


@dataclass(frozen=True)
class HelpEntry:
    """One line of the help: a key, what it does, and where the binding is defined."""

    key: str
    description: str
    action: str
    owner: str


def help_entries(screen: Screen[object]) -> list[HelpEntry]:
    """Every binding active on `screen` (its widgets', its own and the app's), generated."""
    entries: list[HelpEntry] = []
    for key, (node, binding, _enabled, tooltip) in screen.active_bindings.items():
        if binding.system and not binding.description:
            continue
        display = binding.key_display or screen.app.get_key_display(binding)
        entries.append(
            HelpEntry(
                key=display or key,
                description=binding.description or tooltip or binding.action,
                action=binding.action,
                owner=type(node).__name__,
            )
        )
    # The screen's own keys and the app's first; the focused widget's (Textual's) after them.
    rank = {type(screen).__name__: 0, type(screen.app).__name__: 1}
    return sorted(entries, key=lambda e: rank.get(e.owner, 2))


class HelpScreen(ModalScreen[None]):
    """The key map of the screen it was opened on; escape or ? closes it."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close help", key_display="esc")]

    def __init__(self, under: Screen[object]) -> None:
        super().__init__()
        self.entries = help_entries(under)
        self.under_title = type(under).__name__

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Label(f"Keys on {self.under_title}", id="help-title")
            table: DataTable[str] = DataTable(id="help-table", cursor_type="row")
            yield table
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#help-table", DataTable)
        table.add_columns("key", "does", "from")
        for entry in self.entries:
            table.add_row(entry.key, entry.description, entry.owner)
        table.focus()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
