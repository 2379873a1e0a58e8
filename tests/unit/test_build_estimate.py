"""The dry-run's artifact-build estimate (fleet_tui.sweep.artifacts.build_estimate_s): a default
before any build, 0 once cached, and a rebuild (a new recipe) estimated from the recorded time."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from fleet_tui.sweep.artifacts import DEFAULT_BUILD_ESTIMATE_S, build_artifact, build_estimate_s


def test_build_estimate_is_default_then_zero_then_the_recorded_time(tmp_path: Path) -> None:
    assert build_estimate_s("mlp", ["fp16"], tmp_path) == DEFAULT_BUILD_ESTIMATE_S
    artifact = asyncio.run(build_artifact("mlp", ["fp16"], tmp_path))
    assert not artifact.reused and artifact.build_s is not None and artifact.build_s > 0
    assert build_estimate_s("mlp", ["fp16"], tmp_path) == 0.0  # cached: no build will run
    again = asyncio.run(build_artifact("mlp", ["fp16"], tmp_path))
    assert again.reused and again.build_s is None
    # Another recipe of the same workload is not cached; its estimate is the recorded build.
    (entry,) = (tmp_path / "artifacts" / "index").glob("*.json")
    assert json.loads(entry.read_text())["build_s"] == artifact.build_s
    assert build_estimate_s("mlp", ["fp32"], tmp_path) == artifact.build_s
    # Another workload never built here: the documented default.
    assert build_estimate_s("convnet", ["fp16"], tmp_path) == DEFAULT_BUILD_ESTIMATE_S
