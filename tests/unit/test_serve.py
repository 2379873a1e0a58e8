"""`fleet-tui serve`'s host checks, the per-tab app command, and its exit 2 cases (no server starts)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_tui.app.serve import ServeError, app_command, check_host, is_loopback, public_url
from fleet_tui.cli import build_parser


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_served_without_a_warning(host: str) -> None:
    assert is_loopback(host)
    assert check_host(host, allow_remote=False) is None


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "localhost.evil"]
)
def test_other_hosts_need_allow_remote(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ServeError, match="--allow-remote"):
        check_host(host, allow_remote=False)
    warning = check_host(host, allow_remote=True)
    assert warning is not None and host in warning and "warning" in warning


def test_an_empty_host_is_refused_even_with_allow_remote() -> None:
    with pytest.raises(ServeError, match="--host"):
        check_host(" ", allow_remote=True)


def test_a_wildcard_bind_points_browsers_at_this_machine() -> None:
    import socket

    assert public_url("127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert public_url("::1", 8123) == "http://[::1]:8123"
    assert public_url("0.0.0.0", 8123) == f"http://{socket.gethostname()}:8123"


def test_the_served_command_is_this_fleet_tui_with_the_same_options(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--inventory",
            str(tmp_path / "my inv.toml"),
            "--db",
            str(tmp_path / "s.db"),
            "--known-hosts",
            str(tmp_path / "kh"),
            "--accept-new-host-keys",
            "--connect-timeout",
            "4",
        ]
    )
    parts = shlex.split(app_command(args))
    assert parts[:3] == [sys.executable, "-m", "fleet_tui"]
    assert parts[parts.index("--inventory") + 1] == str((tmp_path / "my inv.toml").resolve())
    assert parts[parts.index("--db") + 1] == str((tmp_path / "s.db").resolve())
    assert parts[parts.index("--known-hosts") + 1] == str((tmp_path / "kh").resolve())
    assert "--accept-new-host-keys" in parts
    assert parts[parts.index("--connect-timeout") + 1] == "4.0"
    # What the served tab parses is what the TUI would have parsed.
    served = build_parser().parse_args(parts[3:])
    assert served.command is None and served.accept_new_host_keys


def run_serve(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet_tui", "serve", *argv], capture_output=True, text=True, timeout=60
    )


def test_a_remote_host_without_the_flag_exits_2_naming_it(tmp_path: Path) -> None:
    result = run_serve("--host", "0.0.0.0", "--inventory", str(tmp_path / "none.toml"))
    assert result.returncode == 2
    assert "--host 0.0.0.0" in result.stderr and "--allow-remote" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_inventory_exits_2_before_serving(tmp_path: Path) -> None:
    inventory = tmp_path / "bad.toml"
    inventory.write_text('[[node]]\nname = "a"\nport = "x"\n')
    result = run_serve("--inventory", str(inventory), "--port", "1")
    assert result.returncode == 2
    assert str(inventory) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_bad_port_exits_2_naming_the_flag(port: str) -> None:
    result = run_serve("--port", port)
    assert result.returncode == 2 and "--port" in result.stderr
