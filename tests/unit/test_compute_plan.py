"""The MLComputePlan walk and summary: a Fake plan shaped like coremltools' API, and the real one on macOS."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node_agent import compute_plan

ON_MAC = sys.platform == "darwin"

# The summariser maps device *class names* (as coremltools names them) to ane/gpu/cpu, so the
# fake devices carry those class names.
FakeCPU = type("MLCPUComputeDevice", (), {})
FakeGPU = type("MLGPUComputeDevice", (), {})
FakeANE = type("MLNeuralEngineComputeDevice", (), {})


@dataclass
class FakeNamed:
    name: str


@dataclass
class FakeBlock:
    operations: list[FakeOperation]


@dataclass
class FakeOperation:
    operator_name: str
    outputs: list[FakeNamed]
    blocks: list[FakeBlock] = field(default_factory=list)
    preferred: Any = None
    supported: tuple[Any, ...] = ()
    cost: float | None = None


@dataclass
class FakeUsage:
    preferred_compute_device: Any
    supported_compute_devices: list[Any]


@dataclass
class FakeCost:
    weight: float


@dataclass
class FakeFunction:
    block: FakeBlock


@dataclass
class FakeProgram:
    functions: dict[str, FakeFunction]


@dataclass
class FakeStructure:
    program: FakeProgram | None


class FakeComputePlan:
    """Shaped like coremltools.models.compute_plan.MLComputePlan."""

    def __init__(self, ops: list[FakeOperation]) -> None:
        self.model_structure = FakeStructure(FakeProgram({"main": FakeFunction(FakeBlock(ops))}))

    def get_compute_device_usage_for_mlprogram_operation(self, op: FakeOperation) -> FakeUsage | None:
        if op.preferred is None:
            return None
        return FakeUsage(op.preferred(), [d() for d in op.supported])

    def get_estimated_cost_for_mlprogram_operation(self, op: FakeOperation) -> FakeCost | None:
        return None if op.cost is None else FakeCost(op.cost)


def op(name: str, out: str, pref: Any, supported: tuple[Any, ...], cost: float | None) -> FakeOperation:
    return FakeOperation(name, [FakeNamed(out)], preferred=pref, supported=supported, cost=cost)


def sample_plan() -> FakeComputePlan:
    inner = FakeBlock([op("add", "loop_add", FakeANE, (FakeANE, FakeCPU), 0.05)])
    ops = [
        FakeOperation("const", [FakeNamed("w")]),  # skipped
        op("linear", "fc1", FakeANE, (FakeANE, FakeGPU, FakeCPU), 0.5),
        op("gelu", "act", FakeCPU, (FakeANE, FakeCPU), 0.1),  # fell back: ANE could run it
        op("linear", "fc2", FakeGPU, (FakeGPU, FakeCPU), 0.3),
        FakeOperation(
            "while_loop",
            [FakeNamed("loop")],
            blocks=[inner],
            preferred=FakeCPU,
            supported=(FakeCPU,),
            cost=0.05,
        ),
        op("cast", "c", None, (), None),  # no usage reported
    ]
    return FakeComputePlan(ops)


def test_walk_visits_nested_blocks_before_their_parent_and_skips_consts() -> None:
    raw = compute_plan.plan_ops(sample_plan())
    names = [o["op"] for o in raw["ops"]]
    assert "const" not in names
    assert names.index("add") < names.index("while_loop")  # nested blocks first
    assert raw["count_by_device"] == {"ane": 2, "cpu": 2, "gpu": 1, None: 1}
    assert raw["cost_by_device"]["ane"] == pytest.approx(0.55)
    gelu = next(o for o in raw["ops"] if o["op"] == "gelu")
    assert gelu == {"op": "gelu", "out": ["act"], "pref": "cpu", "supported": ["ane", "cpu"], "cost": 0.1}


def test_summary_shares_and_fallbacks_per_compute_unit() -> None:
    raw = compute_plan.plan_ops(sample_plan())
    summary = compute_plan.summarize_ops(raw, "all")
    assert summary["op_count"] == {"ane": 2, "gpu": 1, "cpu": 2}
    assert summary["op_count_unplaced"] == 1
    assert sum(summary["cost_share"].values()) == pytest.approx(1.0)
    assert summary["cost_share"]["ane"] == pytest.approx(0.55)
    assert [f["op"] for f in summary["fallback_ops"]] == ["gelu"]
    # under cpu_and_ne everything not on the ANE fell back
    ne = compute_plan.summarize_ops(raw, "cpu_and_ne")
    assert sorted(f["op"] for f in ne["fallback_ops"]) == ["cast", "gelu", "linear", "while_loop"]
    assert ne["n_fallback"] == 4
    assert json.dumps(summary)  # goes into a cell_result


def test_program_less_model_is_an_error() -> None:
    plan = sample_plan()
    plan.model_structure.program = None
    with pytest.raises(ValueError, match="not an ML program"):
        compute_plan.plan_ops(plan)


@pytest.mark.skipif(ON_MAC, reason="checks the reason given off macOS")
def test_unsupported_off_macos_with_reason() -> None:
    result = compute_plan.compute_plan_for("/nonexistent.mlmodelc", "all")
    assert result["status"] == "unsupported"
    assert result["reason"] == f"MLComputePlan needs macOS 14.4+ (this node runs {sys.platform})"


@pytest.mark.macos
@pytest.mark.skipif(not ON_MAC, reason="MLComputePlan needs macOS 14.4+")
def test_real_compute_plan_of_a_compiled_mlp(tmp_path: Path) -> None:
    if compute_plan.unsupported_reason():
        pytest.skip(str(compute_plan.unsupported_reason()))
    from node_agent.artifacts import build_artifact
    from node_agent.engines import make_engine

    artifact = build_artifact("mlp", tmp_path, precisions=("fp16",), eval_count=2)
    engine = make_engine("coreml", {"compute_units": "cpu_and_ne", "precision": "fp16"})
    engine.load(artifact, json.loads((artifact / "manifest.json").read_text()), "b1")
    compiled = engine.compiled_path  # type: ignore[attr-defined]
    result = compute_plan.compute_plan_for(compiled, "cpu_and_ne")
    assert result["status"] == "ok", result
    assert result["n_ops"] >= 3  # linear, gelu, linear at least
    placed = sum(result["op_count"].values())
    assert placed + result["op_count_unplaced"] == result["n_ops"]
