"""The `fleet-tui` command: bare, the TUI; with a command, headless.

Start-up must stay fast (`fleet-tui --help` well under half a second), so this module imports
only argparse at top level; every command imports what it needs when it runs.

Exit codes (DESIGN "Controller surface"): 0 ok, 1 a gate failed, 2 bad input or config,
3 incomplete (node faults).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fleet_tui.model.exit_codes import ExitCode

Handler = Callable[[argparse.Namespace], int]


def _unset(default: object, command: bool) -> object:
    """A command's copy of a global option must not reset the value given before the command
    (`fleet-tui --inventory X probe`): argparse copies subparser defaults over it."""
    return argparse.SUPPRESS if command else default


def _add_common(
    parser: argparse.ArgumentParser,
    *,
    json_flag: bool = True,
    command: bool = True,
    json_help: str = "one JSON object per line",
) -> None:
    parser.add_argument(
        "--inventory",
        metavar="PATH",
        default=_unset(None, command),
        help="inventory TOML file or folder of them (default: $FLEET_TUI_INVENTORY, "
        "./inventory/local.toml, then the embedded local-machine inventory)",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=_unset(None, command),
        help="SQLite store (default: $FLEET_TUI_DB or the user data dir)",
    )
    if json_flag:
        parser.add_argument("--json", action="store_true", help=json_help)


def _add_ssh(parser: argparse.ArgumentParser, *, command: bool = True) -> None:
    parser.add_argument(
        "--accept-new-host-keys",
        action="store_true",
        default=_unset(False, command),
        help="trust host keys of nodes never seen before (fingerprints are printed); "
        "a changed key is always refused",
    )
    parser.add_argument(
        "--known-hosts",
        metavar="PATH",
        default=_unset(None, command),
        help="known_hosts file to check and extend (default: ~/.ssh/known_hosts)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=_unset(10.0, command),
        metavar="S",
        help="per-node connect timeout in seconds (default: 10)",
    )


def _lazy(module: str, function: str) -> Handler:
    """A handler that imports its module only when the command runs (keeps --help fast)."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        result: int = getattr(importlib.import_module(module), function)(args)
        return result

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet-tui",
        description="Benchmark Core ML and MLX identically across a fleet of Apple Silicon Macs. "
        "With no command, opens the TUI.",
        epilog="exit codes: 0 ok, 1 a gate failed, 2 bad input or config, 3 incomplete (node faults), "
        "130 interrupted (resume with: fleet-tui sweep --resume RUN)",
    )
    _add_common(parser, json_flag=False, command=False)
    _add_ssh(parser, command=False)
    parser.set_defaults(handler=_lazy("fleet_tui.app.main", "run_app"))
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    probe = commands.add_parser("probe", help="probe every node concurrently and print its facts")
    _add_common(probe)
    _add_ssh(probe)
    probe.set_defaults(handler=_lazy("fleet_tui.cli.fleet", "cmd_probe"))

    deploy = commands.add_parser("deploy", help="upload the agent to every node (only when absent)")
    _add_common(deploy)
    _add_ssh(deploy)
    deploy.set_defaults(handler=_lazy("fleet_tui.cli.fleet", "cmd_deploy"))

    selftest = commands.add_parser("selftest", help="check platform assumptions (TECH_BRIEF F) on every node")
    _add_common(selftest)
    _add_ssh(selftest)
    selftest.set_defaults(handler=_lazy("fleet_tui.cli.fleet", "cmd_selftest"))

    sweep = commands.add_parser("sweep", help="run a matrix sweep from a spec (TOML) across the fleet")
    sweep.add_argument("spec", nargs="?", metavar="SPEC", help="sweep spec TOML (not needed with --resume)")
    _add_common(sweep)
    _add_ssh(sweep)
    sweep.add_argument("--dry-run", action="store_true", help="print the plan and its estimate; run nothing")
    sweep.add_argument("--resume", metavar="RUN", help="run only the unfinished cells of run RUN")
    sweep.add_argument("--junit", metavar="FILE", help="write JUnit XML (one case per cell and per gate)")
    sweep.set_defaults(handler=_lazy("fleet_tui.cli.sweep", "cmd_sweep"))

    runs = commands.add_parser("runs", help="list stored runs with status and gate summary")
    _add_common(runs, json_help="a JSON list of runs, each with its id")
    runs.set_defaults(handler=_lazy("fleet_tui.cli.sweep", "cmd_runs"))

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
