"""The fleet table: one row per inventory node, each row updated on its own as results arrive."""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

from fleet_tui.app.state import (
    MISSING,
    NodeState,
    clip,
    format_agent,
    format_cores,
    format_load,
    format_memory,
    format_os,
    format_power,
    format_rtt,
    show,
)

COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    # Status next to the name: on a narrow terminal the right-hand columns scroll out of view.
    ("status", "status"),
    ("tier", "tier"),
    ("chip", "chip"),
    ("cores", "cores P/E"),
    ("gpu", "GPU"),
    ("memory", "memory"),
    ("os", "OS"),
    ("thermal", "thermal"),
    ("power", "power"),
    ("load", "load"),
    ("agent", "agent"),
    ("rtt", "RTT"),
)
"""(column key, header label), in display order."""

CHIP_WIDTH = 26
"""Linux CPU model strings run to 50 cells; the full string is in the detail panel."""

_BAD_THERMAL = {"heavy", "trapping", "sleeping"}


@dataclass(frozen=True)
class Palette:
    """Cell styles, read from the table's component classes (DataTable cells are Rich text)."""

    ok: Style
    warning: Style
    error: Style
    muted: Style


class NodeTable(DataTable[Text]):
    """A DataTable keyed by node name. Rows appear from the inventory before any probe answers.

    Its colours are component classes (themeable in CSS like any widget part); the table redraws
    its rows itself when the theme changes.
    """

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "node-table--ok",
        "node-table--warning",
        "node-table--error",
        "node-table--muted",
    }
    DEFAULT_CSS = """
    NodeTable > .node-table--ok { color: $success; }
    NodeTable > .node-table--warning { color: $warning; }
    NodeTable > .node-table--error { color: $error; }
    NodeTable > .node-table--muted { text-style: dim; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's own name
        # The name column stays put when a narrow terminal scrolls the table sideways.
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, fixed_columns=1)
        self.palette: Palette | None = None
        self._shown: dict[str, NodeState] = {}
        """The state each row last showed, to redraw it in new colours."""

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, _theme: object) -> None:
        # Published after the new theme's CSS is applied, so the component styles are current.
        self.palette = None
        for state in self._shown.values():
            self.show_state(state)

    def _palette(self) -> Palette:
        if self.palette is None:

            def style(name: str) -> Style:
                return self.get_component_rich_style(f"node-table--{name}", partial=True)

            self.palette = Palette(
                ok=style("ok"), warning=style("warning"), error=style("error"), muted=style("muted")
            )
        return self.palette

    def cells(self, state: NodeState) -> dict[str, Text]:
        """The text of every cell of one node's row."""
        facts = state.facts
        p = self._palette()

        def plain(value: str) -> Text:
            return Text(value, style=p.muted) if value == MISSING else Text(value)

        tier = Text(show(state.node.tier))
        if state.result is not None and state.result.tier_note:
            # The probed chip is the truth; the inventory tier is a claim. Flag the mismatch here,
            # the note itself is in the detail panel.
            tier = Text(f"{show(state.node.tier)} ≠", style=p.warning)

        thermal_value = show(facts.get("thermal_pressure"))
        thermal = plain(thermal_value)
        if thermal_value == "moderate":
            thermal.stylize(p.warning)
        elif thermal_value in _BAD_THERMAL:
            thermal.stylize(p.error)

        status_text = state.status
        if status_text == "ok":
            status = Text(status_text, style=p.ok)
        elif state.probing:
            status = Text(status_text, style=p.muted)
        elif state.error_kind is not None or state.aborted is not None:
            status = Text(status_text, style=p.error)
        else:
            status = Text(status_text)

        return {
            "name": Text(state.node.name, style=Style(bold=True)),
            "tier": tier,
            "chip": plain(clip(show(facts.get("chip")), CHIP_WIDTH)),
            "cores": plain(format_cores(facts)),
            "gpu": plain(show(facts.get("gpu_cores"))),
            "memory": plain(format_memory(facts.get("memory_bytes"))),
            "os": plain(format_os(facts)),
            "thermal": thermal,
            "power": plain(format_power(facts)),
            "load": plain(format_load(facts)),
            "agent": plain(format_agent(state)),
            "rtt": plain(format_rtt(state)),
            "status": status,
        }

    def add_node(self, state: NodeState) -> None:
        """Add a row for a node (keyed by its name)."""
        cells = self.cells(state)
        self._shown[state.node.name] = state
        self.add_row(*(cells[key] for key, _ in COLUMNS), key=state.node.name)

    def show_state(self, state: NodeState) -> None:
        """Redraw one node's row; the other rows are untouched."""
        self._shown[state.node.name] = state
        for key, text in self.cells(state).items():
            self.update_cell(state.node.name, key, text, update_width=True)

    @property
    def selected_name(self) -> str | None:
        """Name of the node under the cursor, if any."""
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return None if row_key.value is None else str(row_key.value)
