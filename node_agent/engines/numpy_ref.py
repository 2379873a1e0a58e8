"""The numpy engine (fp64 reference / fp32 CPU baseline) and helpers the other engines share.

Artifact loading lives here because every engine needs it and numpy is every engine's
dependency: weights come from the artifact's ``weights.npz`` (the same bytes on every node)
and inputs from its ``eval.npz``.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from node_agent.engines import ColdStart, max_rss_bytes
from node_agent.workloads import Bucket, Workload, get_workload


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, loaded eagerly (the file is closed afterwards)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def workload_module(workload: Workload) -> ModuleType:
    """The module implementing `workload` (make_weights / make_inputs / forward)."""
    return importlib.import_module(workload.module)


def eval_key(bucket: str, input_name: str) -> str:
    """eval.npz key of one input of a bucket's evaluation set (see node_agent.artifacts)."""
    return f"{bucket}.{input_name}"


def reference_key(bucket: str) -> str:
    """eval.npz key of the numpy float64 reference outputs of a bucket."""
    return f"{bucket}.reference"


def eval_inputs(evals: dict[str, np.ndarray], workload: Workload, bucket: Bucket) -> dict[str, np.ndarray]:
    """The bucket's evaluation inputs, stacked on a leading "example" axis (count, *shape)."""
    inputs: dict[str, np.ndarray] = {}
    for name in bucket.inputs:
        key = eval_key(bucket.name, name)
        if key not in evals:
            raise KeyError(f"eval.npz has no {key!r} (keys: {', '.join(sorted(evals)[:8])}...)")
        inputs[name] = evals[key]
    return inputs


def example(inputs: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    """One example (index along the leading axis) of stacked eval inputs."""
    return {name: value[index] for name, value in inputs.items()}


def reference_of(model: ArtifactModel) -> np.ndarray:
    """The numpy float64 reference outputs of the model's bucket, (eval_count, *output_shape)."""
    return model.evals[reference_key(model.bucket.name)]


class ArtifactModel:
    """What every engine reads from an artifact for one workload bucket."""

    def __init__(self, artifact_dir: Path, manifest: dict[str, Any], bucket: str) -> None:
        self.artifact_dir = Path(artifact_dir)
        self.manifest = manifest
        self.workload = get_workload(str(manifest["workload"]))
        self.bucket = self.workload.bucket(bucket)
        self.module = workload_module(self.workload)
        self.weights = load_npz(self.artifact_dir / "weights.npz")
        self.evals = load_npz(self.artifact_dir / "eval.npz")
        self.eval_inputs = eval_inputs(self.evals, self.workload, self.bucket)
        self.timing_input = example(self.eval_inputs, 0)


class NumpyEngine:
    """forward() on numpy arrays: float64 (the referee) or float32."""

    name = "numpy"

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self.dtype = np.float64 if config["dtype"] == "fp64" else np.float32
        self._model: ArtifactModel | None = None
        self._weights: dict[str, Any] = {}
        self._inputs: dict[str, Any] = {}

    def check_supported(self) -> str | None:
        return None

    def load(self, artifact_dir: Path, manifest: dict[str, Any], bucket: str) -> ColdStart:
        from node_agent.workloads import prepare
        from node_agent.workloads.ops_numpy import NumpyOps

        t0 = time.perf_counter_ns()
        model = ArtifactModel(artifact_dir, manifest, bucket)
        self.ops = NumpyOps(self.dtype)
        self._weights = prepare(self.ops, model.weights)
        self._inputs = prepare(self.ops, model.timing_input)
        self._model = model
        t1 = time.perf_counter_ns()
        model.module.forward(self.ops, self._weights, self._inputs)
        t2 = time.perf_counter_ns()
        return ColdStart(load_ns=t1 - t0, compile_ns=None, first_ns=t2 - t1)

    def run(self, loops: int) -> int:
        forward, ops, weights, inputs = self._forward, self.ops, self._weights, self._inputs
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            forward(ops, weights, inputs)
        return time.perf_counter_ns() - t0

    @property
    def _forward(self) -> Any:
        assert self._model is not None, "load() first"
        return self._model.module.forward

    def outputs(self, inputs: dict[str, Any]) -> np.ndarray:
        from node_agent.workloads import prepare

        result = self._forward(self.ops, self._weights, prepare(self.ops, inputs))
        return np.asarray(result)

    def peak_memory_bytes(self) -> int | None:
        return max_rss_bytes()

    def info(self) -> dict[str, Any]:
        return {"numpy": np.__version__, "dtype": str(np.dtype(self.dtype))}

    @property
    def model(self) -> ArtifactModel:
        assert self._model is not None, "load() first"
        return self._model
