"""The MLX engine: the workload's forward on mx.array values, on the GPU (Metal) or the CPU.

Timing follows MLX's own benchmarks (docs/PLATFORM.md, "MLX"): every call is forced with ``mx.eval``
inside the timed region, so the time covers the computation, not graph construction. The
graph is not wrapped in ``mx.compile`` (the notebook-style MLX a team would ship first).
Runs on the process's main thread: MLX streams are thread-affine.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from node_agent.engines import ColdStart
from node_agent.engines.numpy_ref import ArtifactModel


def gpu_unsupported_reason() -> str | None:
    """None when MLX can use Metal here, else why not."""
    import mlx.core as mx

    if mx.metal.is_available():
        return None
    version = getattr(mx, "__version__", "?")
    return (
        f"MLX GPU needs Metal (this node: {sys.platform} {platform.machine()}, mlx {version} without Metal)"
    )


class MlxEngine:
    """forward() with MlxOps in fp16 or fp32 on mx.gpu or mx.cpu."""

    name = "mlx"

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self._model: ArtifactModel | None = None
        self._weights: dict[str, Any] = {}
        self._inputs: dict[str, Any] = {}

    def check_supported(self) -> str | None:
        try:
            import mlx.core  # noqa: F401
        except ImportError as exc:
            return f"mlx is not installed ({exc})"
        if self.config["device"] == "gpu":
            return gpu_unsupported_reason()
        return None

    def load(self, artifact_dir: Path, manifest: dict[str, Any], bucket: str) -> ColdStart:
        import mlx.core as mx

        from node_agent.workloads import prepare
        from node_agent.workloads.ops_mlx import MlxOps

        self.mx = mx
        t0 = time.perf_counter_ns()
        mx.set_default_device(mx.gpu if self.config["device"] == "gpu" else mx.cpu)
        model = ArtifactModel(artifact_dir, manifest, bucket)
        self.ops = MlxOps(mx.float16 if self.config["dtype"] == "fp16" else mx.float32)
        self._weights = prepare(self.ops, model.weights)
        self._inputs = prepare(self.ops, model.timing_input)
        mx.eval(list(self._weights.values()), list(self._inputs.values()))  # materialise on the device
        self._model = model
        t1 = time.perf_counter_ns()
        mx.eval(model.module.forward(self.ops, self._weights, self._inputs))
        t2 = time.perf_counter_ns()
        return ColdStart(load_ns=t1 - t0, compile_ns=None, first_ns=t2 - t1)

    def run(self, loops: int) -> int:
        assert self._model is not None, "load() first"
        forward, ops, weights, inputs = self._model.module.forward, self.ops, self._weights, self._inputs
        evaluate = self.mx.eval
        t0 = time.perf_counter_ns()
        for _ in range(loops):
            evaluate(forward(ops, weights, inputs))  # the timed region ends with mx.eval
        return time.perf_counter_ns() - t0

    def outputs(self, inputs: dict[str, Any]) -> np.ndarray:
        assert self._model is not None, "load() first"
        from node_agent.workloads import prepare

        out = self._model.module.forward(self.ops, self._weights, prepare(self.ops, inputs))
        # np.array on bf16 fails and fp16 is lossy to compare in: widen first (docs/PLATFORM.md, "MLX").
        return np.array(out.astype(self.mx.float32))

    def peak_memory_bytes(self) -> int | None:
        import mlx.core as mx

        return int(mx.get_peak_memory())

    def info(self) -> dict[str, Any]:
        import mlx.core as mx

        return {
            "mlx": getattr(mx, "__version__", None),
            "device": str(mx.default_device()),
            "device_info": mx.device_info(),
            "dtype": self.config["dtype"],
            "mx_compile": False,
        }

    @property
    def model(self) -> ArtifactModel:
        assert self._model is not None, "load() first"
        return self._model
