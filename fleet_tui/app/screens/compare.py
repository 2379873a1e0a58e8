"""Compare: the SoC table side by side."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Header

from fleet_tui.app.screens.base import FleetAppScreen


class CompareScreen(FleetAppScreen[None]):
    """The comparison table model of a stored run."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Footer()
