"""Engines (numpy, MLX cpu for real; Core ML on macOS only) and the numeric gate."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from node_agent import numeric
from node_agent.engines import EngineConfigError, make_engine, precision_of, validate_config
from node_agent.engines.numpy_ref import ArtifactModel, example, reference_of
from node_agent.workloads import get_workload

ON_MAC = sys.platform == "darwin"


@pytest.fixture(scope="module")
def mlp_artifact(built_artifact: Callable[[str], Path]) -> Path:
    return built_artifact("mlp")


def manifest_of(artifact: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((artifact / "manifest.json").read_text())
    return manifest


def test_validate_config_fills_defaults_and_names_bad_fields() -> None:
    assert validate_config("mlx", {}) == {"device": "gpu", "dtype": "fp32"}
    assert validate_config("coreml", {"compute_units": "cpu_and_ne"}) == {
        "compute_units": "cpu_and_ne",
        "precision": "fp16",
    }
    with pytest.raises(EngineConfigError, match=r"config\.dtype: 'fp8' is not one of"):
        validate_config("mlx", {"dtype": "fp8"})
    with pytest.raises(EngineConfigError, match=r"config\.units: not a coreml setting"):
        validate_config("coreml", {"units": "all"})
    with pytest.raises(EngineConfigError, match="unknown engine 'tflite'"):
        validate_config("tflite", {})
    assert precision_of("mlx", {"device": "cpu", "dtype": "fp16"}) == "fp16"


class CountingForward:
    """The workload's real forward, counted, with the clock read around each call."""

    def __init__(self, forward: Callable[..., Any]) -> None:
        self.forward = forward
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first_start_ns: int | None = None
        self.last_end_ns: int | None = None

    def __call__(self, *args: Any) -> Any:
        start = time.perf_counter_ns()
        self.first_start_ns = start if self.first_start_ns is None else self.first_start_ns
        result = self.forward(*args)
        self.count += 1
        self.last_end_ns = time.perf_counter_ns()
        return result

    @property
    def span_ns(self) -> int | None:
        if self.first_start_ns is None or self.last_end_ns is None:
            return None
        return self.last_end_ns - self.first_start_ns


def numeric_gate(engine: Any, precision: str) -> dict[str, Any]:
    model: ArtifactModel = engine.model
    count = len(next(iter(model.eval_inputs.values())))
    outputs = np.stack([engine.outputs(example(model.eval_inputs, i)) for i in range(count)])
    return numeric.compare(
        outputs, reference_of(model), model.workload.tolerances[precision], precision=precision
    )


@pytest.mark.parametrize(
    ("engine_name", "config"),
    [
        ("numpy", {"dtype": "fp64"}),
        ("numpy", {"dtype": "fp32"}),
        ("mlx", {"device": "cpu", "dtype": "fp32"}),
        ("mlx", {"device": "cpu", "dtype": "fp16"}),
    ],
)
def test_engine_loads_times_and_passes_the_numeric_gate(
    mlp_artifact: Path, engine_name: str, config: dict[str, str]
) -> None:
    engine = make_engine(engine_name, config)
    assert engine.check_supported() is None
    cold = engine.load(mlp_artifact, manifest_of(mlp_artifact), "b8")
    assert cold.load_ns > 0 and cold.first_ns > 0 and cold.compile_ns is None
    loaded: Any = engine  # the numpy and MLX engines expose what they loaded as `model`
    model: ArtifactModel = loaded.model
    calls = CountingForward(model.module.forward)
    model.module = SimpleNamespace(forward=calls)  # type: ignore[assignment]  # a module stand-in
    for loops in (1, 8):
        calls.reset()
        elapsed = engine.run(loops)
        assert type(elapsed) is int and elapsed > 0
        assert calls.count == loops  # every loop ran the real forward once
        # the timed region covers every call: it spans at least first call start .. last call end
        assert calls.span_ns is not None and elapsed >= calls.span_ns
    gate = numeric_gate(engine, precision_of(engine_name, validate_config(engine_name, config)))
    assert gate["ok"], gate["failures"]
    if config.get("dtype") == "fp64":
        assert gate["max_abs"] < 1e-12  # the referee against itself
    if config.get("dtype") == "fp16":
        assert gate["max_abs"] > 1e-6  # fp16 really ran in fp16
    peak = engine.peak_memory_bytes()
    assert peak is not None and peak > 0


@pytest.mark.skipif(ON_MAC, reason="checks the reasons given off macOS")
def test_unsupported_engines_say_why_off_macos() -> None:
    assert (
        make_engine("coreml", {}).check_supported()
        == f"Core ML prediction needs macOS (this node runs {sys.platform})"
    )
    reason = make_engine("mlx", {"device": "gpu"}).check_supported()
    assert reason is not None and reason.startswith("MLX GPU needs Metal (this node: linux")


def test_numeric_gate_fails_on_drift_and_reports_why() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 10))
    tol = get_workload("convnet").tolerances["fp32"]
    ok = numeric.compare(ref.astype(np.float32), ref, tol, output_kind="logits")
    assert ok["ok"] and ok["top1_agreement"] == 1.0 and ok["topk_agreement"] == 1.0
    shifted = ref + 0.05
    bad = numeric.compare(shifted, ref, tol, output_kind="logits")
    assert not bad["ok"] and any(f.startswith("max_abs") for f in bad["failures"])
    swapped = ref.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    swapped[:, 0] = swapped.max(axis=1) + 1.0
    top = numeric.compare(swapped, ref, tol, output_kind="logits")
    assert top["top1_agreement"] < 1.0 and any("top-1" in f for f in top["failures"])
    assert not numeric.compare(ref[:2], ref, tol)["ok"]
    nan = ref.copy()
    nan[0, 0] = np.nan
    assert numeric.compare(nan, ref, tol)["failures"] == ["1 non-finite output values"]


def test_relative_error_denominator_is_floored() -> None:
    ref = np.array([[1.0, 0.0, 1e-12]])
    out = np.array([[1.0, 1e-6, 1e-6]])
    result = numeric.compare(out, ref, {"max_abs": 1, "max_rel": 1, "min_cosine": 0})
    assert result["rel_floor"] == pytest.approx(1e-3)
    assert result["max_rel_elementwise"] == pytest.approx(1e-3)  # 1e-6 / floor, not / 1e-12


def test_output_digest_round_trips_small_outputs() -> None:
    values = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    digest = numeric.output_digest(values)
    assert digest["shape"] == [2, 3, 4]
    np.testing.assert_array_equal(numeric.decode_digest_values(digest), values)
    assert json.dumps(digest)  # fits in a JSON event
    assert numeric.output_digest(values + 1e-3)["sha256"] != digest["sha256"]


@pytest.mark.macos
@pytest.mark.skipif(not ON_MAC, reason="Core ML prediction needs macOS")
@pytest.mark.parametrize("units", ["cpu_only", "all"])
def test_coreml_predicts_and_caches_the_compiled_model(mlp_artifact: Path, units: str) -> None:
    engine = make_engine("coreml", {"compute_units": units, "precision": "fp32"})
    assert engine.check_supported() is None
    cold = engine.load(mlp_artifact, manifest_of(mlp_artifact), "b8")
    assert cold.first_ns > 0
    assert engine.run(4) > 0
    gate = numeric_gate(engine, "fp32")
    assert gate["ok"], gate["failures"]
    again = make_engine("coreml", {"compute_units": units, "precision": "fp32"})
    cold2 = again.load(mlp_artifact, manifest_of(mlp_artifact), "b8")
    assert cold2.compile_cached is True and cold2.compile_ns is None


def test_engine_defaults_are_one_definition_shared_with_the_spec() -> None:
    """The MLX default dtype (and every other default) comes from the agent's one table."""
    from fleet_tui.config.spec import ENGINE_DEFAULTS, ENGINE_OPTIONS, parse_spec
    from node_agent.engines import CONFIG_CHOICES, CONFIG_DEFAULTS

    assert ENGINE_OPTIONS is CONFIG_CHOICES and ENGINE_DEFAULTS is CONFIG_DEFAULTS
    spec = parse_spec(
        'name = "d"\n[[workload]]\nname = "mlp"\n  [[workload.bucket]]\n  name = "b1"\n  budget_ms = 5.0\n'
        '[engines]\nmlx = [{ device = "cpu" }]\n'
    )
    (mlx,) = spec.engines
    assert mlx.config == validate_config("mlx", {"device": "cpu"})
    assert mlx.key == f"mlx:cpu:{CONFIG_DEFAULTS['mlx']['dtype']}"
    assert mlx.precision == precision_of("mlx", {"device": "cpu"}) == CONFIG_DEFAULTS["mlx"]["dtype"]
