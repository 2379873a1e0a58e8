"""The headless `fleet-tui` command: a parser built from a command table, one module per group.

Only argparse is imported at start-up (`fleet-tui --help` stays fast); handlers load lazily.
"""

from fleet_tui.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
