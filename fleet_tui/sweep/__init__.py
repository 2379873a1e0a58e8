"""Sweeps: the spec (what to measure), the plan (cells per node), the scheduler (`runner`) and the CLI."""

from __future__ import annotations

from fleet_tui.sweep.plan import Plan, PlannedCell, build_plan, cell_key
from fleet_tui.sweep.spec import EngineConfig, SpecError, SweepSpec, load_spec, parse_spec

__all__ = [
    "EngineConfig",
    "Plan",
    "PlannedCell",
    "SpecError",
    "SweepSpec",
    "build_plan",
    "cell_key",
    "load_spec",
    "parse_spec",
]
