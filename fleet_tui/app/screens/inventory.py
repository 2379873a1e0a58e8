"""Inventory: the nodes of the inventory file, editable in place, checked as you type.

The form edits the file's own `[[node]]` tables (a field left empty inherits `[defaults]`), the
loader itself checks every change (`config.inventory_edit.validate`: the exact text a save would
write), and a save keeps every other key of the file. "Test connection" probes the node as the
form describes it, over a fresh connection, and offers an unknown host key for trust in the same
dialog as the Fleet screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, Label, Static

from fleet_tui.app.screens.base import FleetAppScreen
from fleet_tui.config.inventory_edit import EDITABLE_FIELDS, field_text, field_value
from fleet_tui.display import clean

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node

NODE_COLUMNS = ("name", "host", "transport", "tier")
FIELD_HINTS = {
    "transport": "ssh or local",
    "port": "1-65535 (default: 22 or ~/.ssh/config)",
    "identity_file": "key file on this machine",
    "python": "python3 (ssh) or this interpreter (local)",
    "hourly_usd": "US dollars per hour",
    "purchase_usd": "US dollars",
    "tags": "comma-separated",
    "proxy_jump": "user@jump-host",
}


def editable_path(path: Path | None) -> tuple[Path | None, str]:
    """The file a save writes, and a line saying what is edited (None: nothing can be).

    The embedded local-machine inventory ships with the package and is never written: its
    nodes are saved to ./inventory/local.toml, which the default search finds first.
    """
    from fleet_tui.config.inventory import EMBEDDED_INVENTORY

    if path is None:
        return None, "no inventory file: the app was started with a list of nodes"
    if path.is_dir():
        return None, f"{path} is a folder of inventory files: start with --inventory FILE to edit one"
    if path.resolve() == EMBEDDED_INVENTORY.resolve():
        target = Path("inventory") / "local.toml"
        return target, f"the built-in inventory is read-only: saving writes {target}"
    return path, f"editing {path}"


class InventoryScreen(FleetAppScreen[None]):
    """Add, edit and remove nodes of the inventory file; test a node's connection."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "Add node"),
        Binding("x", "remove", "Remove node"),
        Binding("ctrl+t", "test_connection", "Test connection", priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "back_to_list", "Node list", show=False),
    ]

    DEFAULT_CSS = """
    InventoryScreen { layout: vertical; }
    #inventory-path, #inventory-status { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    #inventory-error { height: auto; max-height: 4; padding: 0 1; color: $error; }
    #inventory-body { height: 1fr; }
    #inventory-nodes {
        width: 2fr;
        height: 1fr;
        border: round $panel;
        border-title-color: $text-muted;
        &:focus { border: round $primary; }
    }
    #inventory-form {
        width: 3fr;
        border: round $panel;
        border-title-color: $text-muted;
        &:focus-within { border: round $primary; }
    }
    .field-row { height: 1; }
    .field-row Label { width: 14; color: $text-muted; }
    .field-row Input { width: 1fr; height: 1; border: none; padding: 0 1; background: $surface; }
    .field-row Input:focus { background: $boost; }
    .field-row Input.field-invalid { color: $error; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.path: Path | None = None
        """Where a save writes (None: read-only)."""
        self.document: dict[str, Any] = {}
        """The file's TOML data as read (every key but the nodes is written back unchanged)."""
        self.tables: list[dict[str, Any]] = []
        """The nodes being edited, as they will be written."""
        self.current: int | None = None
        self.error: str | None = None
        """The loader's complaint about the edited inventory (None: it would load)."""
        self.dirty = False
        self._filling = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="inventory-path")
        with Horizontal(id="inventory-body"):
            yield DataTable(id="inventory-nodes", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="inventory-form"):
                for key in EDITABLE_FIELDS:
                    with Horizontal(classes="field-row"):
                        yield Label(key)
                        yield Input(id=f"field-{key}", placeholder=FIELD_HINTS.get(key, ""))
        yield Static(id="inventory-error")
        yield Static(id="inventory-status")
        yield Footer()

    def on_mount(self) -> None:
        from fleet_tui.app.app import FleetApp
        from fleet_tui.config.inventory import InventoryError
        from fleet_tui.config.inventory_edit import node_tables, read_document

        nodes = self.query_one("#inventory-nodes", DataTable)
        nodes.border_title = "nodes"
        self.query_one("#inventory-form").border_title = "node"
        for column in NODE_COLUMNS:
            nodes.add_column(column, key=column)
        source = self.app.inventory_path if isinstance(self.app, FleetApp) else None
        self.path, where = editable_path(source)
        self.query_one("#inventory-path", Static).update(Text(where))  # a path: never markup
        if self.path is not None and source is not None:
            try:
                self.document = read_document(source)
            except InventoryError as exc:
                self.path = None
                self._show_error(str(exc))
            self.tables = node_tables(self.document)
        self._fill_list()
        self._fill_form()
        if self.path is not None:
            self._validate()
        nodes.focus()

    # -- list and form ----------------------------------------------------------------------

    def _fill_list(self) -> None:
        table = self.query_one("#inventory-nodes", DataTable)
        table.clear()
        for index, node in enumerate(self.tables):
            table.add_row(*(clean(field_text(node.get(c)), 40) or "-" for c in NODE_COLUMNS), key=str(index))
        table.border_subtitle = f"{len(self.tables)} node{'' if len(self.tables) == 1 else 's'}"
        if self.current is None and self.tables:
            self.current = 0
        if self.current is not None and self.tables:
            self.current = min(self.current, len(self.tables) - 1)
            table.move_cursor(row=self.current)
        elif not self.tables:
            self.current = None

    def _fill_form(self) -> None:
        """Show the current node's own fields; inherited ones show the default as placeholder."""
        defaults = self.document.get("defaults", {})
        node = self.tables[self.current] if self.current is not None else {}
        self._filling = True
        try:
            for key in EDITABLE_FIELDS:
                field = self.query_one(f"#field-{key}", Input)
                field.value = field_text(node.get(key))
                inherited = defaults.get(key) if isinstance(defaults, dict) else None
                hint = FIELD_HINTS.get(key, "")
                field.placeholder = f"default: {field_text(inherited)}" if inherited is not None else hint
                field.disabled = self.path is None or self.current is None
        finally:
            self._filling = False

    @on(DataTable.RowHighlighted, "#inventory-nodes")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.tables) and event.cursor_row != self.current:
            self.current = event.cursor_row
            self._fill_form()

    @on(DataTable.RowSelected, "#inventory-nodes")
    def _selected(self) -> None:
        if self.path is not None and self.current is not None:
            self.query_one("#field-name", Input).focus()

    @on(Input.Changed)
    def _field_changed(self, event: Input.Changed) -> None:
        if self._filling or self.current is None or event.input.id is None:
            return
        key = event.input.id.removeprefix("field-")
        node = self.tables[self.current]
        value = field_value(key, event.value)
        if value == node.get(key):  # the form being filled in (its Changed arrives later)
            return
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
        self.dirty = True
        table = self.query_one("#inventory-nodes", DataTable)
        if key in NODE_COLUMNS:
            table.update_cell(str(self.current), key, clean(field_text(value), 40) or "-")
        self._validate()

    def _validate(self) -> None:
        """Ask the loader about the inventory as it would be saved; show its answer."""
        from fleet_tui.config.inventory import InventoryError
        from fleet_tui.config.inventory_edit import validate, with_nodes

        if self.path is None:
            return
        try:
            validate(with_nodes(self.document, self.tables), self.path)
        except InventoryError as exc:
            self._show_error(str(exc))
            return
        self._show_error(None)

    def _show_error(self, message: str | None) -> None:
        self.error = message
        self.query_one("#inventory-error", Static).update(Text(message or ""))  # names a path
        for key in EDITABLE_FIELDS:
            invalid = message is not None and f"field '{key}'" in message
            self.query_one(f"#field-{key}", Input).set_class(invalid, "field-invalid")
        state = "unsaved changes" if self.dirty else "no changes"
        self._status(f"{state}; " + ("fix the error to save" if message else "ctrl+s saves"))

    def _status(self, text: str) -> None:
        self.query_one("#inventory-status", Static).update(Text(text))

    # -- actions ----------------------------------------------------------------------------

    def _editable(self, what: str) -> bool:
        if self.path is None:
            self.notify("this inventory cannot be edited here", title=what, severity="warning")
            return False
        return True

    def action_add(self) -> None:
        """A new node with a unique placeholder name; the form takes the focus."""
        if not self._editable("Add node"):
            return
        names = {str(t.get("name")) for t in self.tables}
        number = next(i for i in range(1, len(names) + 2) if f"node-{i}" not in names)
        self.tables.append({"name": f"node-{number}", "host": ""})
        self.current = len(self.tables) - 1
        self.dirty = True
        self._fill_list()
        self._fill_form()
        self._validate()  # the empty host is an error until filled in: it says so
        self.query_one("#field-host", Input).focus()

    def action_remove(self) -> None:
        """Remove the node under the cursor (written only on save)."""
        if not self._editable("Remove node"):
            return
        if self.current is None:
            self.notify("no node is selected", title="Remove node", severity="warning")
            return
        removed = self.tables.pop(self.current)
        self.dirty = True
        self._fill_list()
        self._fill_form()
        self._validate()
        self.notify(f"removed {clean(str(removed.get('name')), 40)} (ctrl+s to save)", title="Inventory")

    def action_back_to_list(self) -> None:
        self.query_one("#inventory-nodes", DataTable).focus()

    async def action_save(self) -> None:
        """Write the file (tomli-w), keeping its other keys; refused while the loader objects."""
        from fleet_tui.app.app import FleetApp
        from fleet_tui.config.inventory import InventoryError
        from fleet_tui.config.inventory_edit import save, with_nodes

        if not self._editable("Save") or self.path is None:
            return
        try:
            nodes = save(with_nodes(self.document, self.tables), self.path)
        except InventoryError as exc:
            self._show_error(str(exc))
            self.notify(str(exc), title="Not saved", severity="error")
            return
        except OSError as exc:
            self.notify(f"{self.path}: {exc.strerror or exc}", title="Not saved", severity="error")
            return
        self.document = with_nodes(self.document, self.tables)
        self.dirty = False
        if isinstance(self.app, FleetApp):
            self.app.nodes = nodes
            self.app.inventory_path = self.path
            await self.app.rebuild_screen("fleet")  # its table is built from the nodes: show the new ones
        self._show_error(None)
        self._status(f"saved {len(nodes)} node{'' if len(nodes) == 1 else 's'} to {self.path}")
        self.notify(f"saved {len(nodes)} nodes to {self.path}", title="Inventory")

    def _current_node(self) -> Node | None:
        """The node under the cursor as the loader reads it (with [defaults]); None if invalid."""
        from fleet_tui.config.inventory import InventoryError
        from fleet_tui.config.inventory_edit import validate, with_nodes

        if self.path is None or self.current is None:
            return None
        try:
            nodes = validate(with_nodes(self.document, self.tables), self.path)
        except InventoryError:
            return None
        return nodes[self.current]

    def action_test_connection(self) -> None:
        """Probe the node as the form describes it (saved or not) over a fresh connection."""
        node = self._current_node()
        if node is None:
            self.notify(self.error or "no node is selected", title="Test connection", severity="warning")
            return
        self._status(f"testing {node.name}…")
        self._test(node)

    @work(exclusive=True, exit_on_error=False, group="inventory-test", description="Testing a connection")
    async def _test(self, node: Node) -> None:
        from fleet_tui.app.app import FleetApp
        from fleet_tui.app.screens.hostkey import review_and_trust
        from fleet_tui.fleet.probe import probe_fleet
        from fleet_tui.fleet.transport.base import NodeErrorKind

        if not isinstance(self.app, FleetApp):
            return
        settings = self.app.settings
        result = None
        async for answer in probe_fleet([node], settings):  # no connections given: fresh ones
            result = answer
        error = result.error if result is not None else None
        if error is not None and error.kind is NodeErrorKind.HOST_KEY_UNKNOWN:
            said = await review_and_trust(self.app, node, settings)
            self._status(f"{node.name}: {said}")
            if not said.startswith("trusted"):
                return
            async for answer in probe_fleet([node], settings):
                result = answer
        self._status(f"{node.name}: {describe(result)}")


def describe(result: object) -> str:
    """One line for a probe result: the chip and round trip, or the error kind and message."""
    from fleet_tui.display import format_rtt_ms
    from fleet_tui.fleet.probe import ProbeResult

    if not isinstance(result, ProbeResult):
        return "no answer"
    if result.ok:
        chip = clean(str((result.facts or {}).get("chip") or "unknown chip"), 40)
        rtt = format_rtt_ms(result.rtt_ms) if result.rtt_ms is not None else "-"
        return f"ok: {chip}, round trip {rtt}"
    if result.error is not None:
        return clean(f"{result.error.kind.value}: {result.error.message}", 200)
    return "failed"
