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

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3

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
    probe.set_defaults(handler=_lazy("fleet_tui.fleet_commands", "cmd_probe"))

    deploy = commands.add_parser("deploy", help="upload the agent to every node (only when absent)")
    _add_common(deploy)
    _add_ssh(deploy)
    deploy.set_defaults(handler=_lazy("fleet_tui.fleet_commands", "cmd_deploy"))

    selftest = commands.add_parser("selftest", help="check platform assumptions (TECH_BRIEF F) on every node")
    _add_common(selftest)
    _add_ssh(selftest)
    selftest.set_defaults(handler=_lazy("fleet_tui.fleet_commands", "cmd_selftest"))

    sweep = commands.add_parser("sweep", help="run a matrix sweep from a spec (TOML) across the fleet")
    sweep.add_argument("spec", nargs="?", metavar="SPEC", help="sweep spec TOML (not needed with --resume)")
    _add_common(sweep)
    _add_ssh(sweep)
    sweep.add_argument("--dry-run", action="store_true", help="print the plan and its estimate; run nothing")
    sweep.add_argument("--resume", metavar="RUN", help="run only the unfinished cells of run RUN")
    sweep.add_argument("--junit", metavar="FILE", help="write JUnit XML (one case per cell and per gate)")
    sweep.set_defaults(handler=_lazy("fleet_tui.sweep.cli", "cmd_sweep"))

    runs = commands.add_parser("runs", help="list stored runs with status and gate summary")
    _add_common(runs, json_help="a JSON list of runs, each with its id")
    runs.set_defaults(handler=_lazy("fleet_tui.sweep.cli", "cmd_runs"))

    _add_decision_commands(commands)
    _add_export_commands(commands)
    return parser


def _add_decision_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """compare, capex and baseline (handlers in fleet_tui.decision_commands)."""

    def output_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--min-effect",
            type=float,
            default=0.02,
            metavar="F",
            help="smallest change that counts as faster/slower, a fraction (default: 0.02 = 2%%)",
        )
        parser.add_argument(
            "--format", metavar="FMT", help="text (default), or an export format: csv md json html"
        )
        parser.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
        parser.add_argument(
            "--utilisation",
            type=float,
            default=1.0,
            metavar="F",
            help="fraction of hours a rented node is used, for the payback (default: 1.0)",
        )

    compare = commands.add_parser(
        "compare",
        help="SoC side by side (one run), run vs run (two), or against a named baseline",
        description="Compare stored runs. One run: nodes side by side against a baseline node. Two runs "
        "sharing nodes: run vs run, regressions first. --against NAME: the run (default: the latest) "
        "against a named baseline, exit 1 on a significant regression.",
    )
    compare.add_argument("runs", nargs="*", metavar="RUN", help="run ids (default: the latest run)")
    _add_common(compare, json_flag=False)
    compare.add_argument("--baseline", metavar="NODE|CHIP", help="baseline column (default: the first node)")
    compare.add_argument(
        "--metric",
        choices=("p50", "p95", "cold", "drift", "share", "cost"),
        default="p95",
        help="what the ratios compare (default: p95)",
    )
    compare.add_argument(
        "--against", metavar="NAME", help="compare with the named baseline run (exit 1 on regression)"
    )
    output_options(compare)
    compare.set_defaults(handler=_lazy("fleet_tui.decision_commands", "cmd_compare"))

    capex = commands.add_parser(
        "capex", help="cost per million inferences, purchase payback and the cheapest tier per workload"
    )
    capex.add_argument("runs", nargs="*", metavar="RUN", help="run ids (default: the latest run)")
    _add_common(capex, json_flag=False)
    output_options(capex)
    capex.set_defaults(handler=_lazy("fleet_tui.decision_commands", "cmd_capex"))

    baseline = commands.add_parser("baseline", help="name a run as a baseline, or list the named baselines")
    actions = baseline.add_subparsers(dest="action", metavar="ACTION", required=True)
    set_parser = actions.add_parser("set", help="name RUN as baseline NAME (replaces an earlier one)")
    set_parser.add_argument("name", metavar="NAME")
    set_parser.add_argument("run", metavar="RUN")
    _add_common(set_parser, json_flag=False)
    list_parser = actions.add_parser("list", help="list the named baselines")
    _add_common(list_parser, json_help="a JSON list of baselines")
    baseline.set_defaults(handler=_lazy("fleet_tui.decision_commands", "cmd_baseline"), json=False)


def _add_export_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """export, bundle (and bundle verify) and import (handlers in fleet_tui.export_commands)."""
    export = commands.add_parser(
        "export",
        help="write the compare table of a run as CSV, Markdown, JSON or an offline HTML report",
        description="Write the table `fleet-tui compare RUN` shows (same options) to a file: tidy CSV, "
        "GitHub Markdown, versioned JSON, or a self-contained HTML report with charts.",
    )
    export.add_argument("run", metavar="RUN", help="run id (see: fleet-tui runs)")
    _add_common(export, json_flag=False)
    export.add_argument(
        "--format", metavar="FMT", help="csv | md | json | html (default: from --output's suffix)"
    )
    export.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    export.add_argument("--baseline", metavar="NODE|CHIP", help="baseline column (default: the first node)")
    export.add_argument(
        "--metric",
        choices=("p50", "p95", "cold", "drift", "share", "cost"),
        default="p95",
        help="what the ratios compare (default: p95)",
    )
    export.add_argument("--min-effect", type=float, default=0.02, metavar="F", help="default: 0.02 (2%%)")
    export.add_argument(
        "--utilisation", type=float, default=1.0, metavar="F", help="for the payback (default: 1.0)"
    )
    export.set_defaults(handler=_lazy("fleet_tui.export_commands", "cmd_export"))

    bundle = commands.add_parser(
        "bundle",
        help="write a run's hashed acceptance bundle, or verify one (bundle verify PATH)",
        usage="fleet-tui bundle RUN --output PATH\n       fleet-tui bundle verify PATH [--json]",
        description="bundle RUN --output PATH writes the spec and input contract, artifact manifests, node "
        "facts, raw samples, summaries, gate verdicts, exports and charts with a SHA256SUMS, as a folder or "
        "a .tar.gz (by the suffix). bundle verify PATH checks every hash and recomputes the summaries and "
        "gate verdicts from the raw samples: exit 0 ok, 1 changed/missing/extra files or disagreeing "
        "figures, 2 not a readable bundle.",
    )
    bundle.add_argument("target", metavar="RUN|verify", help="the run to bundle, or `verify`")
    bundle.add_argument("path", nargs="?", metavar="PATH", help="with verify: the bundle folder or .tar.gz")
    _add_common(bundle, json_help="verify: the report as one JSON object")
    bundle.add_argument("--output", metavar="PATH", help="bundle folder (new or empty) or PATH.tar.gz")
    bundle.set_defaults(handler=_lazy("fleet_tui.export_commands", "cmd_bundle"))

    imp = commands.add_parser(
        "import",
        help="merge a verified bundle into the store (importing the same run twice changes nothing)",
    )
    imp.add_argument("bundle", metavar="BUNDLE", help="bundle folder or .tar.gz")
    _add_common(imp, json_flag=False)
    imp.set_defaults(handler=_lazy("fleet_tui.export_commands", "cmd_import"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
