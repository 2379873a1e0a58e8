"""The `fleet-tui` command line: the parser, the shared SSH flags, exit codes, result summaries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_summary_names_why_each_problem_cell_has_no_result() -> None:
    import dataclasses
    import io

    from fleet_tui.analysis.gates import GateReport
    from fleet_tui.cli.sweep import print_result
    from fleet_tui.store import CellRow
    from fleet_tui.sweep.scheduler import SweepResult

    def cell(key: str, state: str, reason: str | None) -> CellRow:
        return CellRow(1, 1, "local", "mlp", "b1", "numpy", {}, key, state, 0, reason, None, None)

    result = SweepResult(
        run_id=7,
        status="interrupted",
        exit_code=130,
        report=GateReport(()),
        cells={"pending": 2},
        nodes={},
        wall_s=1.0,
        problem_cells=[cell("mlp/b1/a", "pending", None), cell("mlp/b1/b", "pending", "interrupted")],
    )
    out = io.StringIO()
    print_result(result, out)
    lines = out.getvalue().splitlines()
    assert "  PENDING local mlp/b1/a: not started" in lines
    assert "  PENDING local mlp/b1/b: interrupted" in lines
    assert not any(line.endswith(":") for line in lines)

    # A node that is down loses every cell for one reason: said once, not once per cell.
    down = "host_key_unknown: unknown host key for [10.0.0.9]:22 (ssh-ed25519 SHA256:abc)"
    keys = [f"mlp/b{i}/numpy:fp64" for i in range(5)]
    lost = dataclasses.replace(result, problem_cells=[cell(k, "lost", down) for k in keys])
    out = io.StringIO()
    print_result(lost, out)
    assert out.getvalue().count(down) == 1, out.getvalue()
    assert f"  LOST local 5 cells ({keys[0]}, {keys[1]}, {keys[2]}, …): {down}" in out.getvalue()


def _run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI_PROBE, *args], capture_output=True, text=True, timeout=60
    )


_CLI_PROBE = """
import sys
from fleet_tui.cli import main
code = main(sys.argv[1:])
print("textual imported:", "textual" in sys.modules)
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('[[node]]\nname = "a"\nhost = "h"\nport = "22"\n', "port"),
        ("[[node]\nname=", "bad.toml"),
    ],
    ids=["bad-field", "bad-toml"],
)
def test_bad_inventory_exits_2_before_the_tui(tmp_path: Path, content: str, needle: str) -> None:
    """A bad inventory prints the reason and exits 2 without ever importing Textual."""
    bad = tmp_path / "bad.toml"
    bad.write_text(content)
    done = _run_cli(["--inventory", str(bad)])
    assert done.returncode == 2, done.stderr
    assert "bad.toml" in done.stderr and needle in done.stderr
    assert "textual imported: False" in done.stdout
    assert "\x1b[" not in done.stdout  # the terminal never switched to the TUI


def test_settings_from_the_shared_ssh_flags(tmp_path: Path) -> None:
    """The TUI honours the same --known-hosts / --accept-new-host-keys / --connect-timeout flags."""
    from fleet_tui.cli import build_parser
    from fleet_tui.config.settings import settings_from_args

    known = tmp_path / "kh"
    args = build_parser().parse_args(
        ["--known-hosts", str(known), "--accept-new-host-keys", "--connect-timeout", "2.5"]
    )
    settings = settings_from_args(args)
    assert (settings.known_hosts_path(), settings.accept_new_host_keys, settings.connect_timeout) == (
        known,
        True,
        2.5,
    )
    defaults = settings_from_args(build_parser().parse_args([]))
    assert defaults.known_hosts is None and not defaults.accept_new_host_keys


def test_version_prints_the_package_version() -> None:
    from fleet_tui import __version__

    result = _run_cli(["--version"])
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == f"fleet-tui {__version__}"


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "1e308", "ten"])
@pytest.mark.parametrize("where", ["global", "command"])
def test_a_bad_connect_timeout_is_exit_2_naming_the_flag(value: str, where: str) -> None:
    argv = (
        ["--connect-timeout", value, "probe"] if where == "global" else ["probe", "--connect-timeout", value]
    )
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(argv)
    assert raised.value.code == 2


def test_runs_names_the_store_it_read(tmp_path: Path) -> None:
    from fleet_tui.store import Store

    db = tmp_path / "empty.db"
    Store.open(db).close()
    result = _run_cli(["runs", "--db", str(db)])
    assert result.returncode == 0 and f"no runs (store {db})" in result.stdout


def test_runs_on_a_directory_is_exit_2_with_the_reason(tmp_path: Path) -> None:
    result = _run_cli(["runs", "--db", str(tmp_path)])
    assert result.returncode == 2
    assert (
        "is a directory; a fleet-tui store (--db) is one SQLite file" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_selftest_ends_with_its_counts() -> None:
    inventory = Path(__file__).resolve().parents[2] / "inventory" / "local.toml"
    result = _run_cli(["selftest", "--inventory", str(inventory)])
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.splitlines()[-2]  # the line before the harness's own "textual imported"
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    expected = (
        f"selftest: {rows.count('PASS')} pass, {rows.count('FAIL')} fail, {rows.count('SKIPPED')} skipped"
    )
    assert last == f"{expected} on 1 node(s)"


def test_every_json_stream_uses_the_type_envelope_key() -> None:
    import io
    import json

    from fleet_tui.cli.progress import JsonProgress

    out = io.StringIO()
    JsonProgress(out).emit("cell_result", node="n1", message="done", type="agent-said", cell="mlp/b1")
    record = json.loads(out.getvalue())
    assert record["type"] == "cell_result" and record["type_"] == "agent-said"
    assert record["node"] == "n1" and record["cell"] == "mlp/b1" and "event" not in record
    inventory = Path(__file__).resolve().parents[2] / "inventory" / "local.toml"
    for command in (["probe"], ["selftest"]):
        result = _run_cli([*command, "--json", "--inventory", str(inventory)])
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        assert lines and all("type" in line for line in lines), (command, result.stdout)


def test_runs_shows_measured_time_apart_from_the_wall_span(tmp_path: Path) -> None:
    # A run interrupted after its first cell and resumed two hours later: measured time is the
    # cells' spans (1 min 30 s), the wall span includes the idle gap (2 h).
    import json
    import sqlite3

    from spec_fixtures import spec_toml

    from fleet_tui.config.spec import parse_spec
    from fleet_tui.model.cells import PlannedCell
    from fleet_tui.store import Store

    db = tmp_path / "resumed.db"
    spec = parse_spec(spec_toml("resumed", workloads=(("mlp", (("b1", 2.0), ("b8", 4.0))),)))
    with Store.open(db) as store:
        run_id = store.create_run(spec)
        store.add_cells(
            run_id,
            [PlannedCell("local", "mlp", b, "numpy", {}, f"mlp/{b}/numpy", 2.0, 1.0) for b in ("b1", "b8")],
        )
        store.set_run_status(run_id, "complete", exit_code=0)
    with sqlite3.connect(db) as raw:
        raw.execute(
            "UPDATE runs SET started_at = ?, finished_at = ?",
            ("2026-01-01T10:00:00.000+00:00", "2026-01-01T12:00:00.000+00:00"),
        )
        spans = {
            "mlp/b1/numpy": ("2026-01-01T10:00:00.000+00:00", "2026-01-01T10:00:30.000+00:00"),
            "mlp/b8/numpy": ("2026-01-01T11:59:00.000+00:00", "2026-01-01T12:00:00.000+00:00"),
        }
        for key, (begin, end) in spans.items():
            raw.execute(
                "UPDATE cells SET state = 'done', started_at = ?, finished_at = ? WHERE key = ?",
                (begin, end, key),
            )
    result = _run_cli(["runs", "--db", str(db)])
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert "MEASURED" in header and "WALL" in header
    assert "1m 30s" in row and "2h 00m" in row
    as_json = _run_cli(["runs", "--db", str(db), "--json"])
    (record,) = json.loads(as_json.stdout.splitlines()[0])
    assert record["measured_s"] == 90.0 and record["wall_s"] == 7200.0


def test_sweep_with_a_directory_as_known_hosts_exits_2_before_any_node(tmp_path: Path) -> None:
    from spec_fixtures import spec_toml

    spec = tmp_path / "s.toml"
    spec.write_text(spec_toml("kh"))
    inventory = tmp_path / "fleet.toml"
    inventory.write_text('[[node]]\nname = "far"\nhost = "far.invalid"\n')
    folder = tmp_path / "kh"
    folder.mkdir()
    db = tmp_path / "x.db"
    result = _run_cli(
        ["sweep", str(spec), "--inventory", str(inventory), "--known-hosts", str(folder), "--db", str(db)]
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"known_hosts {folder} cannot be read: a directory" in result.stderr
    assert "unreachable" not in result.stdout + result.stderr and not db.exists()
