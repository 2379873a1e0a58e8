"""Artifacts: real coremltools conversions (Linux can convert and save, not predict).

Each workload is built once per session (eval_count=2, test-sized) into a shared tmp dir.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from node_agent.artifacts import (
    ArtifactError,
    build_artifact,
    build_main,
    load_eval_set,
    load_weights,
    package_name,
    verify_artifact,
)
from node_agent.protocol import Emitter, decode_event
from node_agent.workloads import get_workload, workload_names

ct = pytest.importorskip("coremltools", reason="coremltools is not installed in this environment")
from coremltools.models.utils import load_spec  # noqa: E402

EVAL_COUNT = 2
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def artifacts(built_artifact: Callable[[str], Path]) -> dict[str, Path]:
    """workload name -> built artifact dir (the session's shared builds, EVAL_COUNT inputs)."""
    return {name: built_artifact(name) for name in workload_names()}


@pytest.fixture()
def mlp_copy(artifacts: dict[str, Path], tmp_path: Path) -> Path:
    target = tmp_path / artifacts["mlp"].name
    shutil.copytree(artifacts["mlp"], target)
    return target


@pytest.mark.parametrize("name", workload_names())
def test_conversion_lists_every_bucket_as_an_enumerated_shape(artifacts: dict[str, Path], name: str) -> None:
    workload = get_workload(name)
    manifest = verify_artifact(artifacts[name])
    ((flexible_name, _axes),) = workload.flexible_inputs().items()
    for precision, io_type in (("fp16", "FLOAT16"), ("fp32", "FLOAT32")):
        spec = load_spec(str(artifacts[name] / package_name(precision)))
        assert spec.specificationVersion == 8  # iOS17 == macOS14
        inputs = {i.name: i.type.multiArrayType for i in spec.description.input}
        assert list(inputs) == list(workload.buckets[0].inputs)
        enumerated = [tuple(s.shape) for s in inputs[flexible_name].enumeratedShapes.shapes]
        assert enumerated == [b.inputs[flexible_name] for b in workload.buckets]
        for input_name, array_type in inputs.items():
            expected = "INT32" if workload.input_dtypes[input_name] == "int32" else io_type
            assert (
                ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array_type.dataType) == expected
            )
            if input_name != flexible_name:  # fixed inputs stay fixed (decoder-step's x)
                assert not array_type.enumeratedShapes.shapes
        assert [o.name for o in spec.description.output] == [workload.output_name]
        assert manifest["conversion_seconds"][precision] > 0
    assert manifest["recipe"]["target"] == "macOS14"
    assert manifest["recipe"]["quantization"]["method"] == "none"


def test_manifest_lists_every_file_and_its_hashes(artifacts: dict[str, Path]) -> None:
    root = artifacts["decoder-step"]
    manifest = json.loads((root / "manifest.json").read_text())
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert sorted(manifest["files"]) == [f for f in on_disk if f != "manifest.json"]
    assert any(f.startswith("model-fp16.mlpackage/Data/") for f in manifest["files"])
    assert manifest["artifact_id"] == root.name and len(root.name) == 16
    assert manifest["files"]["weights.npz"] == manifest["weights_sha256"]
    assert set(manifest["versions"]) == {"coremltools", "numpy", "python", "protobuf"}
    assert set(manifest["semantic_hash"]) == {"fp16", "fp32"}
    assert manifest["packages"]["fp16"]["inputs"]["kv_cache"] == {"dtype": "float16", "flexible_axes": [3]}


def test_eval_set_holds_seeded_inputs_and_float64_references(artifacts: dict[str, Path]) -> None:
    from node_agent.workloads import mlp as module
    from node_agent.workloads import prepare
    from node_agent.workloads.ops_numpy import NumpyOps

    bucket = get_workload("mlp").bucket("b8")
    inputs, references = load_eval_set(artifacts["mlp"], "b8")
    assert len(inputs) == EVAL_COUNT and references.dtype == np.float64
    expected = module.make_inputs(bucket, 0, EVAL_COUNT)
    ops = NumpyOps(np.float64)
    weights = load_weights(artifacts["mlp"])
    for x, want, ref in zip(inputs, expected, references, strict=True):
        assert np.array_equal(x["x"], want["x"])
        np.testing.assert_array_equal(module.forward(ops, prepare(ops, weights), prepare(ops, x)), ref)
    with pytest.raises(KeyError, match="known: b1, b8, b32"):
        load_eval_set(artifacts["mlp"], "b64")


def test_rebuilding_the_same_recipe_in_another_process_gives_the_same_id(
    artifacts: dict[str, Path], tmp_path: Path
) -> None:
    code = (
        "import json, sys; from pathlib import Path; from node_agent.artifacts import build_artifact, "
        "read_manifest; p = build_artifact('mlp', Path(sys.argv[1]), eval_count=2); "
        "print(json.dumps(read_manifest(p)['semantic_hash'])); print(p.name)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True, cwd=REPO
    )
    semantic_line, artifact_id = result.stdout.strip().splitlines()[-2:]
    first = verify_artifact(artifacts["mlp"])
    assert artifact_id == first["artifact_id"]
    assert json.loads(semantic_line) == first["semantic_hash"]
    # the raw package bytes do differ (docs/PLATFORM.md, "Artifact hashes"): hence semantic hashes
    second = verify_artifact(tmp_path / artifact_id)
    assert (
        second["files"]["model-fp16.mlpackage/Manifest.json"]
        != first["files"]["model-fp16.mlpackage/Manifest.json"]
    )
    # and a build of an existing id in the same root reuses the directory
    assert build_artifact("mlp", artifacts["mlp"].parent, eval_count=EVAL_COUNT) == artifacts["mlp"]


def test_a_different_recipe_gets_a_different_id(artifacts: dict[str, Path], tmp_path: Path) -> None:
    other = build_artifact("mlp", tmp_path, eval_count=EVAL_COUNT, seed=1, precisions=("fp32",))
    assert other.name != artifacts["mlp"].name
    assert sorted(p.name for p in other.iterdir() if p.suffix == ".mlpackage") == ["model-fp32.mlpackage"]


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "relpath", ["weights.npz", "model-fp16.mlpackage/Data/com.apple.CoreML/weights/weight.bin"]
)
def test_verify_names_a_file_with_a_flipped_byte(mlp_copy: Path, relpath: str) -> None:
    verify_artifact(mlp_copy)
    target = mlp_copy / relpath
    _flip_byte(target, target.stat().st_size // 2)
    with pytest.raises(ArtifactError, match=str(target).replace(".", r"\.") + ": sha256"):
        verify_artifact(mlp_copy)


def test_verify_names_a_missing_file_and_a_missing_manifest(mlp_copy: Path) -> None:
    (mlp_copy / "eval.npz").unlink()
    with pytest.raises(ArtifactError, match=r"eval\.npz: missing"):
        verify_artifact(mlp_copy)
    (mlp_copy / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json: missing"):
        verify_artifact(mlp_copy)


def test_int8_quantization_records_the_policy_and_compresses_weights(tmp_path: Path) -> None:
    path = build_artifact(
        "mlp",
        tmp_path,
        eval_count=1,
        precisions=("fp16",),
        quantization={"method": "linear", "dtype": "int8"},
    )
    manifest = verify_artifact(path)
    policy = manifest["recipe"]["quantization"]
    assert policy["method"] == "linear" and policy["dtype"] == "int8" and policy["target"] == "macOS14"
    assert policy["granularity"] == "per_channel" and policy["weight_threshold"] == 2048
    spec = load_spec(str(path / package_name("fp16")))
    op_types = {
        op.type
        for block in spec.mlProgram.functions["main"].block_specializations.values()
        for op in block.operations
    }
    assert "constexpr_affine_dequantize" in op_types
    with pytest.raises(ValueError, match="per_block"):
        build_artifact("mlp", tmp_path, quantization={"method": "linear", "granularity": "per_block"})


def _events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [decode_event(line) for line in stream.getvalue().splitlines()]


def test_build_main_reports_the_artifact_as_facts(artifacts: dict[str, Path]) -> None:
    stream = io.StringIO()
    root = artifacts["mlp"].parent
    code = build_main(Emitter(stream), ["mlp", "--out", str(root), "--eval-count", str(EVAL_COUNT)])
    assert code == 0
    (event,) = _events(stream)
    assert event["type"] == "facts"
    artifact = event["facts"]["artifact"]
    assert artifact["artifact_id"] == artifacts["mlp"].name and artifact["reused"] is True
    assert artifact["path"] == str(artifacts["mlp"])
    assert artifact["manifest"]["workload"] == "mlp"


@pytest.mark.parametrize(
    ("argv", "code_name"),
    [
        (["resnet", "--out", "x"], "unknown_workload"),
        (["mlp", "--precision", "fp8"], "bad_arguments"),
        ([], "bad_arguments"),
    ],
)
def test_build_main_rejects_bad_input_with_exit_code_2(
    argv: list[str], code_name: str, tmp_path: Path
) -> None:
    stream = io.StringIO()
    if "--out" not in argv and argv:
        argv = [*argv, "--out", str(tmp_path)]
    assert build_main(Emitter(stream), argv) == 2
    (event,) = _events(stream)
    assert event["type"] == "error" and event["code"] == code_name
    if code_name == "unknown_workload":
        assert "known workloads: mlp" in event["message"]


def test_artifacts_module_imports_only_the_stdlib() -> None:
    code = (
        "import sys, node_agent.artifacts; "
        "print(sorted(m for m in ('numpy', 'mlx', 'coremltools') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == "[]"
