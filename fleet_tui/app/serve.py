"""`fleet-tui serve`: the same TUI in a browser, through textual-serve.

textual-serve runs a shell command per browser tab (a fresh `fleet-tui` process speaking
Textual's web driver over its stdin/stdout) and relays it over a websocket to xterm.js. So the
served app is exactly the terminal app, on the inventory, store and SSH settings given here.

Only loopback addresses are served by default: the app can probe, deploy and trust host keys,
so exposing it is the operator's explicit choice (`--allow-remote`), and a warning says so.
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import socket
import sys
from pathlib import Path

from fleet_tui.model.exit_codes import ExitCode

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
"""textual-serve's own default port."""


class ServeError(ValueError):
    """A host or port the operator gave that cannot be served (exit 2, no traceback)."""


def is_loopback(host: str) -> bool:
    """True for "localhost" and loopback IP literals (127.0.0.0/8, ::1).

    Any other name counts as remote: a name could resolve to anything, and a wrong guess here
    would expose the fleet's controls.
    """
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> str | None:
    """The warning to print for `host`, None for loopback; ServeError when it may not be served."""
    if not host.strip():
        raise ServeError("--host: empty host name")
    if is_loopback(host):
        return None
    if not allow_remote:
        raise ServeError(
            f"--host {host}: not a loopback address; the served app can probe, deploy and trust "
            "host keys, so serving it beyond this machine needs --allow-remote"
        )
    return (
        f"warning: serving fleet-tui on {host}: anyone who can reach this address controls the "
        "fleet (probe, deploy, trust host keys); there is no login"
    )


def public_url(host: str, port: int) -> str:
    """The address the page tells the browser to open the websocket on.

    A wildcard bind address (0.0.0.0, ::) is not one a browser can connect to: use this
    machine's name instead.
    """
    try:
        wildcard = ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False
    name = socket.gethostname() if wildcard else host
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # an IPv6 literal in a URL
    return f"http://{name}:{port}"


def app_command(args: argparse.Namespace) -> str:
    """The shell command textual-serve starts per browser tab: this fleet-tui, same options.

    Paths are made absolute (the server may be started from anywhere) and every part is
    shell-quoted (textual-serve runs the command through a shell).
    """
    from fleet_tui.config.inventory import resolve_inventory_path
    from fleet_tui.paths import resolve_db_path

    parts = [sys.executable, "-m", "fleet_tui"]
    parts += ["--inventory", str(resolve_inventory_path(getattr(args, "inventory", None)).resolve())]
    parts += ["--db", str(resolve_db_path(getattr(args, "db", None)).resolve())]
    known_hosts = getattr(args, "known_hosts", None)
    if known_hosts:
        parts += ["--known-hosts", str(Path(known_hosts).expanduser().resolve())]
    if getattr(args, "accept_new_host_keys", False):
        parts.append("--accept-new-host-keys")
    timeout = getattr(args, "connect_timeout", None)
    if timeout is not None:
        parts += ["--connect-timeout", repr(float(timeout))]
    return shlex.join(parts)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the TUI over HTTP until interrupted. Exit 2 for a bad host or inventory."""
    from fleet_tui.config.inventory import InventoryError
    from fleet_tui.config.settings import load_nodes

    host: str = args.host
    try:
        warning = check_host(host, bool(args.allow_remote))
        # The same check the TUI makes at start, made once here: a bad inventory is an error
        # on this terminal, not a blank page in every browser tab.
        load_nodes(args)
    except (ServeError, InventoryError) as exc:
        print(f"fleet-tui serve: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if warning is not None:
        print(warning, file=sys.stderr)

    from textual_serve.server import Server

    url = args.public_url or public_url(host, args.port)
    server = Server(app_command(args), host=host, port=args.port, title="fleet-tui", public_url=url)
    try:
        server.serve()
    except OSError as exc:  # the port is taken, the address is not this machine's
        print(f"fleet-tui serve: cannot listen on {host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    return ExitCode.OK
