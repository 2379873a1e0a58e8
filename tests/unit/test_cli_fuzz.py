"""Every numeric option of every command, at the edges: out of range is exit 2 naming the option.

The options are read from the parser itself (every argument with a `type`), so a new numeric
option is fuzzed without touching this file. Parsing is in-process: argparse refuses a bad value
with exit 2 and "argument --flag: invalid ... value" on stderr, before any handler runs.
"""

from __future__ import annotations

import argparse

import pytest

from fleet_tui.cli.parser import build_parser

EDGES = ["0", "-1", "-1e308", "1e308", "nan", "inf", "-inf", str(2**63), "ten", ""]
ALWAYS_BAD = {"-1", "-1e308", "1e308", "nan", "inf", "-inf", str(2**63), "ten", ""}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _typed_options() -> list[tuple[tuple[str, ...], str, bool]]:
    """(command path, option or positional metavar, positional?) for every typed argument."""
    found: list[tuple[tuple[str, ...], str, bool]] = []

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        for action in parser._actions:
            if action.type is not None and action.type is not str:
                if action.option_strings:
                    found.append((path, action.option_strings[0], False))
                else:
                    found.append((path, str(action.metavar), True))
        for name, sub in _subparsers(parser).items():
            walk(sub, (*path, name))

    walk(build_parser(), ())
    return found


OPTIONS = _typed_options()


def _argv(path: tuple[str, ...], option: str, positional: bool, value: str) -> list[str]:
    # "--flag=value" and "-- value": argparse would read "-1e308" as an option of its own.
    if positional:
        return [*path, "--", value]
    needs = {("bundle",): ["1"], ("export",): ["1"], ("baseline", "set"): ["n", "1"]}.get(path, [])
    return [*path, *needs, f"{option}={value}"]


def test_the_numeric_options_are_found() -> None:
    names = {option for _, option, _ in OPTIONS}
    assert {"--connect-timeout", "--min-effect", "--utilisation", "--resume", "RUN"} <= names
    assert len(OPTIONS) >= 15  # the SSH and table options repeat per command


@pytest.mark.parametrize("value", EDGES)
@pytest.mark.parametrize(
    ("path", "option", "positional"), OPTIONS, ids=[" ".join((*p, o)) for p, o, _ in OPTIONS]
)
def test_an_edge_value_parses_or_exits_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], path: tuple[str, ...], option: str, positional: bool, value: str
) -> None:
    try:
        build_parser().parse_args(_argv(path, option, positional, value))
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code == 2, err
        assert f"argument {option}" in err and "invalid" in err and "Traceback" not in err, err
        return
    assert value not in ALWAYS_BAD, f"{' '.join(path)} {option} {value} was accepted"
