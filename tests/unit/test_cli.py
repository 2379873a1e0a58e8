"""The `fleet-tui` argument parser: global options work before or after the command."""

from __future__ import annotations

import pytest

from fleet_tui.cli import build_parser


@pytest.mark.parametrize(
    "argv",
    [
        [
            "--inventory",
            "inv.toml",
            "--db",
            "f.db",
            "--connect-timeout",
            "3",
            "--accept-new-host-keys",
            "probe",
        ],
        [
            "probe",
            "--inventory",
            "inv.toml",
            "--db",
            "f.db",
            "--connect-timeout",
            "3",
            "--accept-new-host-keys",
        ],
        [
            "--inventory",
            "other.toml",
            "probe",
            "--inventory",
            "inv.toml",
            "--db",
            "f.db",
            "--connect-timeout",
            "3",
            "--accept-new-host-keys",
        ],
    ],
    ids=["before-the-command", "after-the-command", "after-wins"],
)
def test_global_options_reach_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.inventory, args.db, args.connect_timeout, args.accept_new_host_keys) == (
        "inv.toml",
        "f.db",
        3.0,
        True,
    )


@pytest.mark.parametrize("argv", [[], ["probe"], ["sweep", "s.toml"], ["runs"]])
def test_defaults_when_no_option_is_given(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.inventory, args.db, args.known_hosts) == (None, None, None)
    assert (args.connect_timeout, args.accept_new_host_keys) == (10.0, False)


def test_top_level_help_lists_the_exit_codes() -> None:
    text = build_parser().format_help()
    assert "exit codes: 0 ok, 1 a gate failed, 2 bad input" in text and "130 interrupted" in text


def test_runs_json_help_says_it_is_a_list() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    runs_help = commands.choices["runs"].format_help()  # type: ignore[index]
    assert "a JSON list of runs" in runs_help
