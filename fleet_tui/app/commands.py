"""The command palette's fleet-tui entries: every screen and every binding of the current screen.

Generated from the same tables as the footer and the help screen (navigation.DESTINATIONS and
each screen's BINDINGS), so a new action is in the palette the moment it has a binding.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from fleet_tui.app.navigation import DESTINATIONS


class FleetCommands(Provider):
    """Open any screen; run any action the current screen or the app binds to a key."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        found: list[tuple[str, str, Callable[[], object]]] = [
            (
                f"Open {entry.title}",
                entry.description,
                partial(app.call_later, app.run_action, f"app.open_screen('{entry.name}')"),
            )
            for entry in DESTINATIONS
        ]
        seen = {f"open_screen('{entry.name}')" for entry in DESTINATIONS}
        screen = self.screen
        for namespace, binding, enabled, _tooltip in screen.active_bindings.values():
            if not enabled or binding.action in seen or not binding.description:
                continue
            seen.add(binding.action)
            target = namespace
            found.append(
                (
                    binding.description,
                    f"key {binding.key_display or binding.key}",
                    partial(app.call_later, app.run_action, binding.action, target),
                )
            )
        return found

    async def discover(self) -> Hits:
        for name, help_text, run in self._commands():
            yield DiscoveryHit(name, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, run in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), run, help=help_text)
