"""Sweep builder, driven with Pilot: the form goes through the spec loader (errors name the field
as you type), the plan is the dry-run's, and a spec round-trips through load and save."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, SelectionList, Static, TextArea
from tui_builder import REPO, TINY_SETTINGS, builder_app, error_of, fill_tiny_sweep, open_builder, spec_of

from fleet_tui.app.screens.sweep_builder import SweepBuilderScreen
from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import load_spec

Settle = Callable[[Pilot[Any]], Awaitable[None]]

pytestmark = pytest.mark.timeout(120)


async def test_errors_name_the_field_as_you_type(local_node: Node, settle: Settle, tmp_path: Path) -> None:
    app = builder_app(tmp_path, [local_node])
    async with app.run_test(size=(160, 48)) as pilot:
        builder = await open_builder(pilot, settle)
        assert spec_of(builder) is None and "[[workload]]" in error_of(builder)  # nothing picked yet
        await fill_tiny_sweep(pilot, builder)
        assert builder.error is None and spec_of(builder) is not None and builder.plan is not None
        assert [c.key for c in builder.plan.runnable] == ["mlp/b1/numpy:fp64"]

        # The budget field edits the highlighted bucket; a non-number is the loader's error.
        buckets = builder.query_one("#builder-buckets", SelectionList)
        buckets.highlighted = buckets.get_option_index("mlp/b1")
        await pilot.pause()
        budget = builder.query_one("#builder-budget", Input)
        budget.value = "fast"
        await pilot.pause()
        assert spec_of(builder) is None
        assert "bucket 'b1'" in error_of(builder) and "budget_ms" in error_of(builder), error_of(builder)
        budget.value = "7.5"
        await pilot.pause()
        spec = spec_of(builder)
        assert spec is not None and spec.budget_ms("mlp", "b1") == 7.5
        assert "mlp/b1 · 7.5 ms" in str(buckets.get_option("mlp/b1").prompt)

        settings = builder.query_one("#builder-settings", TextArea)
        settings.text = TINY_SETTINGS.replace("runs = 2", "runs = 0")
        await pilot.pause()
        assert "[measure]" in error_of(builder) and "runs" in error_of(builder), error_of(builder)
        settings.text = "[measure\n"
        await pilot.pause()
        assert "settings (TOML syntax)" in error_of(builder)
        settings.text = '[targets]\nnodes = ["local"]\n'
        await pilot.pause()
        assert "targets cannot be set here" in error_of(builder)
        settings.text = TINY_SETTINGS
        await pilot.pause()
        spec = spec_of(builder)
        assert spec is not None and spec.measure.runs == 2

        # A launch with an invalid spec says why and starts nothing.
        builder.query_one("#builder-engines", SelectionList).deselect_all()
        await pilot.pause()
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert app.sweep is None and isinstance(app.screen, SweepBuilderScreen)
        assert "[engines]" in error_of(builder)


async def test_plan_is_the_dry_runs_and_a_saved_spec_runs_headless(
    local_node: Node, settle: Settle, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The builder's plan text is what `fleet-tui sweep --dry-run` prints for the saved file."""
    from fleet_tui.cli import main

    tagged = Node(name="tagged", host="127.0.0.1", port=9, tags=("lab",), source="test")
    app = builder_app(tmp_path, [local_node, tagged])
    spec_path = tmp_path / "specs" / "tiny.toml"
    async with app.run_test(size=(160, 48)) as pilot:
        builder = await open_builder(pilot, settle)
        await fill_tiny_sweep(pilot, builder, target="tag:lab")
        builder.query_one("#builder-engines", SelectionList).select("coreml:all:fp16")
        await pilot.pause()
        assert builder.plan is not None and builder.plan.nodes == ("tagged",)
        builder.query_one("#builder-path", Input).value = str(spec_path)
        await pilot.press("ctrl+s")
        await pilot.pause()
        plan_table = builder.plan.table()
        shown = str(builder.query_one("#builder-plan", Static).content)
        assert plan_table in shown and "2 cell(s): 2 to run, 0 unsupported" in shown
    saved = load_spec(spec_path)
    assert saved.targets.tags == ("lab",) and [e.key for e in saved.engines] == [
        "numpy:fp64",
        "coreml:all:fp16",
    ]
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[[node]]\nname = "local"\nhost = "localhost"\ntransport = "local"\npython = "{sys.executable}"\n'
        '[[node]]\nname = "tagged"\nhost = "127.0.0.1"\nport = 9\ntags = ["lab"]\n'
    )
    capsys.readouterr()
    assert main(["sweep", str(spec_path), "--dry-run", "--inventory", str(inventory)]) == 0
    assert plan_table in capsys.readouterr().out


async def test_load_then_save_keeps_the_spec(local_node: Node, settle: Settle, tmp_path: Path) -> None:
    original = load_spec(REPO / "specs" / "smoke.toml")
    app = builder_app(tmp_path, [local_node])
    out = tmp_path / "copy.toml"
    async with app.run_test(size=(160, 48)) as pilot:
        builder = await open_builder(pilot, settle)
        path = builder.query_one("#builder-path", Input)
        path.value = str(tmp_path / "missing.toml")
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert "cannot read the spec" in error_of(builder)
        path.value = str(REPO / "specs" / "smoke.toml")
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert spec_of(builder) is not None, error_of(builder)
        assert builder.form().budgets["minilm-l6/s32"] == "1000"
        assert list(builder.query_one("#builder-buckets", SelectionList).selected) == [
            "mlp/b1",
            "minilm-l6/s32",
        ]
        assert builder.plan is not None and len(builder.plan.cells) == 6
        path.value = str(out)
        await pilot.press("ctrl+s")
        await pilot.pause()
    copy = load_spec(out)
    assert copy.contract_hash == original.contract_hash
    assert (copy.name, copy.measure, copy.gates, copy.scheduler, copy.targets, copy.engines) == (
        original.name,
        original.measure,
        original.gates,
        original.scheduler,
        original.targets,
        original.engines,
    )


async def test_every_key_of_the_builder_and_live_sweep_says_or_does_something(
    local_node: Node, settle: Settle, tmp_path: Path
) -> None:
    """With nothing filled in and no sweep, each screen key explains itself (a notice)."""
    from textual.message import Message
    from textual.notifications import Notify

    from fleet_tui.app.screens.live_sweep import LiveSweepScreen

    app = builder_app(tmp_path, [local_node])
    messages: list[Message] = []

    def notices() -> int:
        return sum(isinstance(m, Notify) for m in messages)

    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        builder = await open_builder(pilot, settle)
        for screen_key in ("w", "l"):
            await pilot.press(screen_key)
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, SweepBuilderScreen | LiveSweepScreen)
            keys = [
                b.key
                for node, b, on, _t in screen.active_bindings.values()
                if node is screen and on and b.description and b.show
            ]
            assert keys, screen
            for key in keys:
                before = (notices(), app.screen)
                await pilot.press(key)
                await pilot.pause()
                assert (notices(), app.screen) != before, f"{screen_key}: key {key!r} did nothing"
        assert app.sweep is None and builder.spec is None
