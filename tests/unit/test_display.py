"""One formatter for every front end: the CLI's probe line and the TUI's table print the same labels."""

from __future__ import annotations

import pytest

from fleet_tui import display
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


FACTS = {
    "chip": "Apple M2",
    "cores_p": 4,
    "cores_e": 4,
    "memory_bytes": int(7.7 * 2**30),
    "os": "macos",
    "os_version": "14.5",
    "load_avg": [1.25, 1.0, 0.9],
}


def test_cli_and_tui_print_the_same_memory_cores_os_and_load() -> None:
    """7.7 GiB is "7.7 GiB" on both front ends (the CLI used to round it to "8 GiB")."""
    from fleet_tui.app import state

    assert state.format_memory(FACTS["memory_bytes"]) == "7.7 GiB"
    probe_line = format_probe_line(
        ProbeResult(Node(name="n", host="h"), True, None, FACTS, None, 1.0, 0.1, None, None), 2
    )
    for tui_text in (
        state.format_memory(FACTS["memory_bytes"]),
        state.format_cores(FACTS),
        state.format_os(FACTS),
        state.format_load(FACTS),
    ):
        assert f" {tui_text} " in probe_line, (tui_text, probe_line)
    assert "8 GiB" not in probe_line


@pytest.mark.parametrize(
    ("n_bytes", "text"),
    [(16 * 2**30, "16 GiB"), (int(7.7 * 2**30), "7.7 GiB"), (int(7.97 * 2**30), "8 GiB"), (0, "0 GiB")],
)
def test_memory_is_whole_gib_only_when_it_is_nearly_whole(n_bytes: int, text: str) -> None:
    assert display.format_memory(n_bytes) == text


def test_unknown_values_show_the_placeholder_never_none() -> None:
    assert display.format_memory(None) == display.MISSING
    assert display.format_memory(True) == display.MISSING  # a bool is not a byte count
    assert display.format_memory(-1, "-") == "-"
    assert display.format_os({}, "-") == "-"
    assert display.format_os({"os": "linux", "kernel": "6.1.0-18-amd64"}) == "Linux 6.1.0"
    assert display.format_cores({"cores_total": 8}) == "8"
    assert display.format_load({"load_avg": ["x"]}) == display.MISSING
    assert display.format_ns_as_ms(1_234_567) == "1.235 ms" and display.format_ns_as_ms(None) == "n/a"


def test_clean_escapes_control_and_format_characters_and_bounds_length() -> None:
    assert display.clean("ok\tfine") == "ok\tfine"
    assert display.clean("a\x1b[2Jb\x07") == "a\\x1b[2Jb\\x07"
    assert display.clean("rtl\u202eevil") == "rtl\\u202eevil"  # a bidi override is a format char
    assert display.clean("x" * 300) == "x" * display.MAX_FIELD + "..."
    assert display.clean("x" * 300, limit=300) == "x" * 300
