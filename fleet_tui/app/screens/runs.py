"""Runs: every stored run."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer, Header

from fleet_tui.app.screens.base import FleetAppScreen


class RunsScreen(FleetAppScreen[None]):
    """Every run in the store, started here or headless."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Footer()
