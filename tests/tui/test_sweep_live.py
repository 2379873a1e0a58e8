"""The operator's whole job in the TUI, on the real local node with the real scheduler: build a
small sweep, launch it, watch it reach done (leaving and reopening Live sweep on the way), open
Runs, then Compare, export Markdown and read the file. Then cancel a sweep (with the dialog) and
resume it from Runs; and the coalescing of a fast stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, OptionList, RichLog, SelectionList, Static, TextArea
from tui_builder import TINY_SETTINGS, builder_app, fill_tiny_sweep, open_builder

from fleet_tui.app.app import FleetApp
from fleet_tui.app.dialogs.confirm import ConfirmDialog
from fleet_tui.app.dialogs.export import ExportDialog
from fleet_tui.app.screens.compare import CompareScreen
from fleet_tui.app.screens.fleet import FleetScreen
from fleet_tui.app.screens.live_sweep import LiveSweepScreen
from fleet_tui.app.screens.runs import RunsScreen
from fleet_tui.app.sweep_session import LOG_LINES, SweepFinished, SweepSession, TuiProgress
from fleet_tui.config.inventory import Node
from fleet_tui.store import Store

Settle = Callable[[Pilot[Any]], Awaitable[None]]

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

SWEEP_WAIT_S = 240.0
"""Upper bound for a tiny sweep (an artifact build, a probe, two short runs) on a busy 2-core box."""


async def until(
    pilot: Pilot[Any], condition: Callable[[], bool], what: str, limit: float = SWEEP_WAIT_S
) -> None:
    """Turn the message loop until `condition` holds; fail naming `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")
        await pilot.pause(0.1)


def shown(app: FleetApp) -> Screen[Any]:
    """The screen on top now (a call: a type checker must not keep an earlier narrowing)."""
    return app.screen


def is_shown(app: FleetApp, screen: Screen[Any]) -> bool:
    return app.screen is screen


def finished(messages: list[Message]) -> list[SweepSession]:
    return [m.session for m in messages if isinstance(m, SweepFinished)]


def status_of(screen: LiveSweepScreen) -> str:
    """The first node's status line as drawn."""
    return str(screen.query_one("#live-status-0", Static).content)


def log_text(screen: LiveSweepScreen) -> str:
    return "\n".join(strip.text for strip in screen.query_one("#live-log", RichLog).lines)


async def test_build_launch_watch_runs_compare_export(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    app = builder_app(tmp_path, [local_node])
    messages: list[Message] = []
    async with app.run_test(size=(160, 48), message_hook=messages.append) as pilot:
        builder = await open_builder(pilot, settle)
        await fill_tiny_sweep(pilot, builder)
        assert builder.plan is not None and len(builder.plan.runnable) == 1
        await pilot.press("ctrl+l")
        await pilot.pause()
        live = app.screen
        assert isinstance(live, LiveSweepScreen)
        session = app.sweep
        assert session is not None
        assert live.session is session

        # Leaving the screen does not stop the sweep; reopened, it shows the current state.
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
        await until(pilot, lambda: session.run_id is not None or not session.running, "the run to start")
        assert session.worker is not None
        await pilot.press("l")
        await pilot.pause()
        assert is_shown(app, live)

        await until(pilot, lambda: bool(finished(messages)), "the sweep to finish")
        await pilot.pause()
        assert session.status == "complete", (session.status, session.error, list(session.log))
        assert finished(messages) == [session] * len(finished(messages))
        assert session.result is not None and session.result.cells == {"done": 1}
        assert live.node_progress("local") == (1, 1)
        assert session.samples > 0 and session.nodes["local"].samples > 0
        assert f"run {session.run_id} · tui-tiny · complete · cells 1/1" in session.summary()
        logged = log_text(live)
        assert "done mlp/b1/numpy:fp64: p50" in logged and f"run {session.run_id}: complete" in logged

        # Runs lists it (read from the store), Compare shows it, Markdown export writes its row.
        await pilot.press("u")
        await settle(pilot)
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        assert [(r.id, r.status, r.cells.get("done")) for r in runs.runs] == [(session.run_id, "complete", 1)]
        row = runs.query_one("#runs-table", DataTable).get_row_at(0)
        assert row[1] == str(session.run_id) and row[3] == "complete" and row[5] == "1/1"
        await pilot.press("enter")
        await settle(pilot)
        compare = app.screen
        assert isinstance(compare, CompareScreen) and compare.table is not None
        assert compare.table.run_ids == (session.run_id,)
        assert [(r.workload, r.bucket, r.engine_key) for r in compare.table.rows] == [
            ("mlp", "b1", "numpy:fp64")
        ]
        out = tmp_path / "exports" / "compare.md"
        out.parent.mkdir()
        await pilot.press("e")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        options = dialog.query_one(OptionList)
        options.highlighted = [str(o.id) for o in options.options].index("md")
        await pilot.pause()
        dialog.query_one(Input).value = str(out)
        dialog.query_one(Input).focus()
        await pilot.press("enter")
        await settle(pilot)
    text = out.read_text()
    lines = [line for line in text.splitlines() if "mlp" in line and "b1" in line]
    assert lines, text
    assert any("numpy:fp64" in line or "numpy" in line for line in lines), text


async def test_cancel_with_confirmation_then_resume_from_runs(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    """x asks first; yes stops the agents and the run is interrupted; R on Runs resumes it (the
    `sweep --resume` path) and the same run completes."""
    app = builder_app(tmp_path, [local_node])
    messages: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        builder = await open_builder(pilot, settle)
        await fill_tiny_sweep(pilot, builder)
        # Long enough to be cancelled while measuring (two runs of 4 s), short enough to resume.
        builder.query_one("#builder-settings", TextArea).text = TINY_SETTINGS.replace(
            "max_duration_s = 1.0", "max_duration_s = 4.0"
        ).replace("min_duration_s = 0.2", "min_duration_s = 4.0")
        await pilot.pause()
        assert builder.spec is not None, builder.error
        await pilot.press("ctrl+l")
        await pilot.pause()
        live = app.screen
        assert isinstance(live, LiveSweepScreen)
        session = app.sweep
        assert session is not None
        await until(pilot, lambda: session.nodes["local"].samples > 0, "samples to arrive")

        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await pilot.pause()
        assert is_shown(app, live) and not session.stop.is_set() and session.running
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: bool(finished(messages)), "the cancelled sweep to stop", 60.0)
        assert session.status == "interrupted" and session.run_id is not None
        run_id = session.run_id
        with Store.open(app.db_path or tmp_path / "none") as store:
            assert store.run(run_id).status == "interrupted"
            assert [c.state for c in store.cells_for(run_id)] == ["pending"]

        await pilot.press("u")
        await settle(pilot)
        runs = app.screen
        assert isinstance(runs, RunsScreen) and runs.runs[0].status == "interrupted"
        await pilot.press("R")
        await pilot.pause()
        resumed = app.sweep
        assert resumed is not None and resumed is not session and resumed.resume_run == run_id
        assert is_shown(app, live) and live.session is resumed
        await until(pilot, lambda: resumed in finished(messages), "the resumed sweep to finish")
        assert resumed.status == "complete" and resumed.run_id == run_id, (resumed.error, list(resumed.log))
        assert "(resumed)" in resumed.summary()
        await pilot.press("u")
        await settle(pilot)
        runs_again = shown(app)
        assert isinstance(runs_again, RunsScreen)
        assert [(r.id, r.status) for r in runs_again.runs] == [(run_id, "complete")]


async def test_resume_of_a_complete_run_says_so(local_node: Node, settle: Settle, tmp_path: Path) -> None:
    """R on a finished run starts nothing and says why (as `sweep --resume` does)."""
    import export_fixture

    db = tmp_path / "fleet.db"
    export_fixture.build(db, nodes=export_fixture.NODES[:1], runs=2, samples_per_run=140).store.close()
    app = FleetApp([local_node], builder_app(tmp_path, []).settings, db_path=db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        await pilot.press("R")
        await pilot.pause()
        assert app.sweep is None and isinstance(app.screen, RunsScreen)


async def test_a_fast_stream_is_coalesced_and_the_log_stays_bounded(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    """Thousands of sample events between two turns of the loop: one redraw, every sample counted;
    a longer log than the bound keeps only the newest lines (session and RichLog)."""
    from spec_fixtures import spec_toml

    from fleet_tui.config.spec import parse_spec

    app = builder_app(tmp_path, [local_node])
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        session = SweepSession(parse_spec(spec_toml("fast")), [local_node])
        session.status = "running"
        session.nodes["local"].cell = "mlp/b1/numpy:fp64"
        app.sweep = session
        await pilot.press("l")
        await pilot.pause()
        live = app.screen
        assert isinstance(live, LiveSweepScreen) and live.session is session
        progress = TuiProgress(app, session)
        before = live.redraws
        for _ in range(5000):
            progress.emit("samples", node="local", cell="mlp/b1/numpy:fp64", count=2)
        await until(pilot, lambda: "10000 samples" in status_of(live), "the samples to be drawn", 30.0)
        assert session.samples == 10_000
        # 5,000 events, coalesced: the screen redrew a handful of times, not once per event.
        redraws = live.redraws - before
        assert redraws <= 3, f"{redraws} redraws for 5,000 sample events"
        for i in range(LOG_LINES + 250):
            progress.emit("agent_warning", node="local", message=f"warning {i}")
        log = live.query_one("#live-log", RichLog)
        last = f"warning {LOG_LINES + 249}"
        await until(pilot, lambda: bool(log.lines) and log.lines[-1].text.endswith(last), "the log", 30.0)
        assert len(session.log) == LOG_LINES and len(log.lines) <= LOG_LINES
        assert log.lines[-1].text.endswith(f"warning {LOG_LINES + 249}")
        assert f"warning {LOG_LINES + 249}" in str(live.query_one("#live-warnings", Static).content)


async def test_runs_started_headless_show_in_runs(local_node: Node, settle: Settle, tmp_path: Path) -> None:
    """A sweep run by `fleet-tui sweep` (no TUI) is in Runs, read from the store; Live sweep says
    nothing was started here."""
    import sys

    from fleet_tui.app.screens.live_sweep import NO_SWEEP
    from fleet_tui.app.screens.sweep_builder import BuilderForm

    form = BuilderForm(
        name="headless", targets=["node:local"], buckets=["mlp/b1"], budgets={"mlp/b1": "50"},
        engines=["numpy:fp64"], settings=TINY_SETTINGS,
    )  # fmt: skip
    spec_path = tmp_path / "headless.toml"
    spec_path.write_text(form.spec(str(spec_path))[0])
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[[node]]\nname = "local"\nhost = "localhost"\ntransport = "local"\npython = "{sys.executable}"\n'
    )
    db = tmp_path / "fleet.db"
    headless = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleet_tui", "sweep", str(spec_path), "--inventory", str(inventory),
        "--db", str(db), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(headless.communicate(), SWEEP_WAIT_S)
    assert headless.returncode in (0, 1), output.decode()  # 1: a gate failed, the run is complete
    app = FleetApp([local_node], builder_app(tmp_path, []).settings, db_path=db)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        runs = shown(app)
        assert isinstance(runs, RunsScreen)
        assert [(r.name, r.status, r.cells.get("done")) for r in runs.runs] == [("headless", "complete", 1)]
        await pilot.press("l")
        await pilot.pause()
        live = shown(app)
        assert isinstance(live, LiveSweepScreen) and live.session is None
        assert str(live.query_one("#live-summary", Static).content) == NO_SWEEP


@pytest.mark.sshd
async def test_a_sweep_over_the_sshd_fleet_and_the_local_node(
    sshd_fleet: Any, local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    """The same job over a real loopback sshd node and the local node: no target picked = every
    node; both bars reach done, Compare puts the two side by side, the Markdown has both."""
    fleet = sshd_fleet(1)
    nodes = [*fleet.nodes, local_node]
    app = FleetApp(nodes, fleet.settings, db_path=tmp_path / "fleet.db")
    messages: list[Message] = []
    async with app.run_test(size=(160, 48), message_hook=messages.append) as pilot:
        builder = await open_builder(pilot, settle)
        await fill_tiny_sweep(pilot, builder)
        builder.query_one("#builder-targets", SelectionList).deselect_all()
        await pilot.pause()
        assert builder.plan is not None and builder.plan.nodes == tuple(n.name for n in nodes)
        await pilot.press("ctrl+l")
        await pilot.pause()
        session = app.sweep
        live = shown(app)
        assert session is not None and isinstance(live, LiveSweepScreen)
        await until(pilot, lambda: session in finished(messages), "the sweep to finish")
        await pilot.pause()
        assert session.status == "complete", (session.error, list(session.log))
        assert [live.node_progress(n.name) for n in nodes] == [(1, 1)] * len(nodes)

        await pilot.press("u")
        await settle(pilot)
        runs = shown(app)
        assert isinstance(runs, RunsScreen) and sorted(runs.runs[0].nodes) == sorted(n.name for n in nodes)
        await pilot.press("enter")
        await settle(pilot)
        compare = shown(app)
        assert isinstance(compare, CompareScreen) and compare.table is not None
        assert sorted(str(c.node) for c in compare.table.columns) == sorted(n.name for n in nodes)
        out = tmp_path / "both.md"
        await pilot.press("e")
        await pilot.pause()
        dialog = shown(app)
        assert isinstance(dialog, ExportDialog)
        options = dialog.query_one(OptionList)
        options.highlighted = [str(o.id) for o in options.options].index("md")
        await pilot.pause()
        dialog.query_one(Input).value = str(out)
        dialog.query_one(Input).focus()
        await pilot.press("enter")
        await settle(pilot)
    text = out.read_text()
    assert all(n.name in text for n in nodes), text
    assert any("mlp" in line and "b1" in line for line in text.splitlines()), text


async def test_quit_with_a_sweep_running_asks_then_leaves_the_run_interrupted(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    app = builder_app(tmp_path, [local_node])
    async with app.run_test(size=(120, 40)) as pilot:
        builder = await open_builder(pilot, settle)
        await fill_tiny_sweep(pilot, builder)
        builder.query_one("#builder-settings", TextArea).text = TINY_SETTINGS.replace(
            "max_duration_s = 1.0", "max_duration_s = 30.0"
        ).replace("min_duration_s = 0.2", "min_duration_s = 30.0")
        await pilot.press("ctrl+l")
        await pilot.pause()
        session = app.sweep
        assert session is not None
        await until(pilot, lambda: session.nodes["local"].samples > 0, "samples to arrive")
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(shown(app), ConfirmDialog) and app.return_code is None
        await pilot.press("n")
        await pilot.pause()
        assert session.running and not session.stop.is_set()
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: app.return_code is not None, "the app to quit", 60.0)
    assert session.status == "interrupted" and session.run_id is not None
    with Store.open(tmp_path / "fleet.db") as store:
        assert store.run(session.run_id).status == "interrupted"


async def test_warnings_are_notified_as_they_happen(local_node: Node, settle: Settle, tmp_path: Path) -> None:
    """Thermal pressure (once per change), contention, busy and a lost node each raise a notice
    at once and stay in the warning pane; node text is sanitised."""
    from spec_fixtures import spec_toml
    from textual.notifications import Notify

    from fleet_tui.config.spec import parse_spec

    app = builder_app(tmp_path, [local_node])
    messages: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await settle(pilot)
        session = SweepSession(parse_spec(spec_toml("warn")), [local_node])
        session.status = "running"
        app.sweep = session
        progress = TuiProgress(app, session)
        for _ in range(3):
            progress.emit("thermal", node="local", state={"thermal_pressure": "serious\x1b[31m"})
        progress.emit(
            "cell_result", node="local", message="done", cell="mlp/b1/numpy:fp64", flags=["contended"]
        )
        progress.emit("busy", node="local", message="skipped: busy: held by pid 7 on box")
        progress.emit("node_lost", node="local", message="lost: 0/1 cell(s) finished (connection refused)")
        await pilot.pause()
        notices = [m.notification.message for m in messages if isinstance(m, Notify)]
        assert notices == [
            "local: thermal pressure serious\\x1b[31m (node says)",  # the escape shown, never sent
            "local: contention during mlp/b1/numpy:fp64 (other work on the node)",
            "local: skipped: busy: held by pid 7 on box",
            "local: lost: 0/1 cell(s) finished (connection refused)",
        ], notices
        await pilot.press("l")
        await pilot.pause()
        live = shown(app)
        assert isinstance(live, LiveSweepScreen)
        pane = str(live.query_one("#live-warnings", Static).content)
        assert "contention" in pane and "busy" in pane and "lost" in pane and "\x1b" not in pane
