"""The base of fleet-tui's screens: a failed background worker is always shown to the operator."""

from __future__ import annotations

from typing import TypeVar

from textual import on
from textual.screen import Screen
from textual.worker import Worker, WorkerState

ResultType = TypeVar("ResultType")


class FleetAppScreen(Screen[ResultType]):
    """Routes every failed worker of the screen to the app's one error handler.

    Workers run with ``exit_on_error=False`` (one failure must not end the TUI), and Textual's
    `Worker.StateChanged` does not bubble, so without this an exception (an OSError writing
    known_hosts, a bug) would end its worker silently.
    """

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is not WorkerState.ERROR:
            return
        from fleet_tui.app.app import FleetApp

        if isinstance(self.app, FleetApp):
            self.app.report_worker_error(event.worker)
        else:  # a screen shown by another app (tests): still never silent
            self.notify(f"{event.worker.name} failed: {event.worker.error}", severity="error")
