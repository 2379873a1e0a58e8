"""The `fleet-tui` command: bare, the TUI; with a command, headless.

The parser is built from `COMMANDS`, one row per command: its name, help, options and its
handler as "module:function", imported only when the command runs. Start-up must stay fast
(`fleet-tui --help` pays for argparse only), so this module imports nothing heavy, and a new
command group is one module under `fleet_tui/cli/` plus one row here.

Exit codes: `fleet_tui.model.exit_codes.ExitCode` (0 ok, 1 a gate failed, 2 bad input or
config, 3 incomplete (node faults), 130 interrupted).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleet_tui.cli.common import RUN_ID_MAX
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


def _number_type(name: str, low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """An argparse `type` for a finite number in [low, high] ((low, high] with `low_open`).

    argparse turns the ValueError into "argument --flag: invalid <name> value: 'x'", exit 2, so
    -1, nan, inf and 1e308 name the option instead of failing later with a traceback.
    """

    def parse(text: str) -> float:
        value = float(text)
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise ValueError(text)
        return value

    parse.__name__ = name  # argparse names the type in its error
    return parse


_seconds = _number_type("number of seconds in (0, 86400]", 0.0, 86_400.0, low_open=True)
_fraction = _number_type("fraction in [0, 1)", 0.0, math.nextafter(1.0, 0.0))
_utilisation = _number_type("fraction of hours in (0, 1]", 0.0, 1.0, low_open=True)


def _run_id(text: str) -> int:
    value = int(text)
    if not 1 <= value <= RUN_ID_MAX:
        raise ValueError(text)
    return value


_run_id.__name__ = f"run id (an integer in [1, {RUN_ID_MAX}])"


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
        type=_seconds,
        default=_unset(10.0, command),
        metavar="S",
        help="per-node connect timeout in seconds (default: 10)",
    )


def _lazy(target: str) -> Handler:
    """A handler that imports "module:function" only when the command runs (keeps --help fast)."""
    module, function = target.split(":")

    def handler(args: argparse.Namespace) -> int:
        import importlib

        result: int = getattr(importlib.import_module(module), function)(args)
        return result

    return handler


def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", nargs="?", metavar="SPEC", help="sweep spec TOML (not needed with --resume)")


def _sweep_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its estimate; run nothing")
    parser.add_argument(
        "--resume", type=_run_id, metavar="RUN", help="run only the unfinished cells of run RUN"
    )
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML (one case per cell and per gate)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="an inconclusive gate (too little data to decide) fails the run (exit 1); by default it is "
        "shown and does not fail",
    )


METRICS = ("p50", "p95", "cold", "drift", "share", "cost", "energy")


def _table_options(parser: argparse.ArgumentParser) -> None:
    """What shapes a comparison table: compare, capex and export share these."""
    parser.add_argument(
        "--min-effect",
        type=_fraction,
        default=0.02,
        metavar="F",
        help="smallest change that counts as faster/slower, a fraction in [0, 1) (default: 0.02 = 2%%)",
    )
    parser.add_argument(
        "--utilisation",
        type=_utilisation,
        default=1.0,
        metavar="F",
        help="fraction of hours a rented node is used, in (0, 1], for the payback (default: 1.0)",
    )
    parser.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")


def _baseline_and_metric(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", metavar="NODE|CHIP", help="baseline column (default: the first node)")
    parser.add_argument(
        "--metric", choices=METRICS, default="p95", help="what the ratios compare (default: p95)"
    )


def _runs_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", nargs="*", type=_run_id, metavar="RUN", help="run ids (default: the latest run)"
    )


def _compare_options(parser: argparse.ArgumentParser) -> None:
    _baseline_and_metric(parser)
    parser.add_argument(
        "--against", metavar="NAME", help="compare with the named baseline run (exit 1 on regression)"
    )
    parser.add_argument(
        "--format", metavar="FMT", help="text (default), or an export format: csv md json html"
    )
    _table_options(parser)


def _capex_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", metavar="FMT", help="text (default), or an export format: csv md json html"
    )
    _table_options(parser)


def _baseline_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    set_parser = actions.add_parser("set", help="name RUN as baseline NAME (replaces an earlier one)")
    set_parser.add_argument("name", metavar="NAME")
    set_parser.add_argument("run", metavar="RUN")
    _add_common(set_parser, json_flag=False)
    list_parser = actions.add_parser("list", help="list the named baselines")
    _add_common(list_parser, json_help="a JSON list of baselines")
    parser.set_defaults(json=False)


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=_run_id, metavar="RUN", help="run id (see: fleet-tui runs)")


def _export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", metavar="FMT", help="csv | md | json | html (default: from --output's suffix)"
    )
    _baseline_and_metric(parser)
    _table_options(parser)


def _bundle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="RUN|verify", help="the run to bundle, or `verify`")
    parser.add_argument("path", nargs="?", metavar="PATH", help="with verify: the bundle folder or .tar.gz")


def _bundle_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", metavar="PATH", help="bundle folder (new or empty) or PATH.tar.gz")


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle folder or .tar.gz")


def _port(text: str) -> int:
    """A TCP port in 1..65535 (0 would make the page point the browser at port 0)."""
    value = int(text)
    if not 1 <= value <= 65535:
        raise ValueError(text)
    return value


_port.__name__ = "port number in 1..65535"  # argparse names the type in its error


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback only)"
    )
    parser.add_argument("--port", type=_port, default=8000, metavar="N", help="TCP port (default: 8000)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback (anyone reaching it controls the fleet; no login)",
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="the address browsers reach the server at, when it differs from http://HOST:PORT "
        "(a reverse proxy, or a wildcard --host)",
    )


@dataclass(frozen=True)
class Command:
    """One row of the command table."""

    name: str
    help: str
    handler: str
    """"module:function" taking the parsed arguments and returning the exit code."""
    ssh: bool = True
    """Takes the SSH options (--known-hosts, --accept-new-host-keys, --connect-timeout)."""
    json_help: str = "one JSON object per line"
    json: bool = True
    """Takes --json (output that is data)."""
    description: str | None = None
    usage: str | None = None
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    """Positional arguments (added before the common options)."""
    options: Callable[[argparse.ArgumentParser], None] | None = None
    """Options of this command only (added after the common ones)."""


TUI_HANDLER = "fleet_tui.app.main:run_app"

COMMANDS: tuple[Command, ...] = (
    Command("probe", "probe every node concurrently and print its facts", "fleet_tui.cli.fleet:cmd_probe"),
    Command("deploy", "upload the agent to every node (only when absent)", "fleet_tui.cli.fleet:cmd_deploy"),
    Command(
        "selftest",
        "check the platform assumptions measurements rely on, on every node",
        "fleet_tui.cli.fleet:cmd_selftest",
    ),
    Command(
        "sweep",
        "run a matrix sweep from a spec (TOML) across the fleet",
        "fleet_tui.cli.sweep:cmd_sweep",
        arguments=_sweep_arguments,
        options=_sweep_options,
    ),
    Command(
        "runs",
        "list stored runs with status and gate summary",
        "fleet_tui.cli.sweep:cmd_runs",
        ssh=False,
        json_help="a JSON list of runs, each with its id",
    ),
    Command(
        "compare",
        "SoC side by side (one run), run vs run (two), or against a named baseline",
        "fleet_tui.cli.compare:cmd_compare",
        ssh=False,
        json=False,
        description="Compare stored runs. One run: nodes side by side against a baseline node. Two runs "
        "sharing nodes: run vs run, regressions first. --against NAME: the run (default: the latest) "
        "against a named baseline, exit 1 on a significant regression.",
        arguments=_runs_argument,
        options=_compare_options,
    ),
    Command(
        "capex",
        "cost per million inferences, purchase payback and the cheapest tier per workload",
        "fleet_tui.cli.compare:cmd_capex",
        ssh=False,
        json=False,
        arguments=_runs_argument,
        options=_capex_options,
    ),
    Command(
        "baseline",
        "name a run as a baseline, or list the named baselines",
        "fleet_tui.cli.compare:cmd_baseline",
        ssh=False,
        json=False,
        arguments=_baseline_arguments,
    ),
    Command(
        "export",
        "write the compare table of a run as CSV, Markdown, JSON or an offline HTML report",
        "fleet_tui.cli.exports:cmd_export",
        ssh=False,
        json=False,
        description="Write the table `fleet-tui compare RUN` shows (same options) to a file: tidy CSV, "
        "GitHub Markdown, versioned JSON, or a self-contained HTML report with charts.",
        arguments=_export_arguments,
        options=_export_options,
    ),
    Command(
        "bundle",
        "write a run's hashed acceptance bundle, or verify one (bundle verify PATH)",
        "fleet_tui.cli.exports:cmd_bundle",
        ssh=False,
        json_help="verify: the report as one JSON object",
        usage="fleet-tui bundle RUN --output PATH\n       fleet-tui bundle verify PATH [--json]",
        description="bundle RUN --output PATH writes the spec and input contract, artifact manifests, node "
        "facts, raw samples, summaries, gate verdicts, exports and charts with a SHA256SUMS, as a folder or "
        "a .tar.gz (by the suffix). bundle verify PATH checks every hash and recomputes the summaries and "
        "gate verdicts from the raw samples: exit 0 ok, 1 changed/missing/extra files or disagreeing "
        "figures, 2 not a readable bundle.",
        arguments=_bundle_arguments,
        options=_bundle_options,
    ),
    Command(
        "import",
        "merge a verified bundle into the store (importing the same run twice changes nothing)",
        "fleet_tui.cli.exports:cmd_import",
        ssh=False,
        json=False,
        arguments=_import_arguments,
    ),
    Command(
        "serve",
        "serve the TUI in a web browser (textual-serve), on loopback unless --allow-remote",
        "fleet_tui.app.serve:cmd_serve",
        json=False,
        description="Serve the same TUI over HTTP: each browser tab runs its own fleet-tui on this "
        "inventory, store and SSH settings. Listens on 127.0.0.1 by default; any other --host needs "
        "--allow-remote, since whoever opens the page can probe, deploy and trust host keys.",
        options=_serve_options,
    ),
)


def _version() -> str:
    from fleet_tui import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet-tui",
        description="Benchmark Core ML and MLX identically across a fleet of Apple Silicon Macs. "
        "With no command, opens the TUI.",
        epilog="exit codes: 0 ok, 1 a gate failed, 2 bad input or config, 3 incomplete (node faults), "
        "130 interrupted (resume with: fleet-tui sweep --resume RUN)",
    )
    parser.add_argument("--version", action="version", version=f"fleet-tui {_version()}")
    _add_common(parser, json_flag=False, command=False)
    _add_ssh(parser, command=False)
    parser.set_defaults(handler=_lazy(TUI_HANDLER))
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name, help=command.help, description=command.description, usage=command.usage
        )
        if command.arguments is not None:
            command.arguments(sub)
        _add_common(sub, json_flag=command.json, json_help=command.json_help)
        if command.ssh:
            _add_ssh(sub)
        if command.options is not None:
            command.options(sub)
        sub.set_defaults(handler=_lazy(command.handler))
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
