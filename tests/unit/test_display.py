"""One formatter for every front end: the CLI's probe line and the TUI's table print the same labels."""

from __future__ import annotations

from fleet_tui.cli.fleet import format_probe_line
from fleet_tui.config.inventory import Node
from fleet_tui.fleet.probe import ProbeResult, tier_note


def test_tier_note_rules() -> None:
    assert tier_note("M2 Pro", "Apple M2 Pro") is None
    assert tier_note("m1", "Apple M1") is None
    assert tier_note("M2", "Apple M2 Pro") == "inventory says M2, node reports Apple M2 Pro"
    assert tier_note(None, "Apple M1") is None
    assert tier_note("M1", None) is None


def test_probe_line_shows_the_os_as_the_tui_does() -> None:
    """ "macOS 14.5" / "Linux 6.1.0", not the raw "linux Debian GNU/Linux 12 (bookworm)" clipped."""
    node = Node(name="n", host="h")

    def line(facts: dict[str, object]) -> str:
        result = ProbeResult(
            node=node,
            ok=True,
            hello=None,
            facts=facts,
            error=None,
            rtt_ms=1.0,
            seconds=0.1,
            deploy=None,
            tier_note=None,
        )
        return format_probe_line(result, 2)

    assert "macOS 14.5 " in line({"os": "macos", "os_version": "14.5", "kernel": "23.5.0"})
    linux = line({"os": "linux", "os_version": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-18-amd64"})
    assert "Linux 6.1.0 " in linux and "Debian" not in linux
