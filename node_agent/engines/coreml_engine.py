"""The Core ML engine: the artifact's .mlpackage, compiled once per host into a persistent cache.

Follows docs/PLATFORM.md, "Core ML prediction" to the letter (this code cannot run off macOS):

* ``compile_model(pkg, destination_path=dst)`` with ``dst`` ending in ``.mlmodelc`` and not
  existing yet (compile_model ``shutil.move``s into an existing directory otherwise); the
  cache key is the package's content hash + macOS build + coremltools version + compute units;
* ``CompiledMLModel(dst, compute_units=cu)`` timed with perf_counter (it has no load duration);
* the first ``predict`` timed separately (lazy specialisation);
* the warm loop times the synchronous ``predict``; the framework's own time of each predict
  (``last_predict_duration_in_nano_seconds`` on the model proxy) is recorded alongside.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from array import array
from pathlib import Path
from typing import Any

import numpy as np

from node_agent.engines import ColdStart, max_rss_bytes
from node_agent.engines.numpy_ref import ArtifactModel

COMPUTE_UNIT_NAMES = {
    "all": "ALL",
    "cpu_and_ne": "CPU_AND_NE",
    "cpu_and_gpu": "CPU_AND_GPU",
    "cpu_only": "CPU_ONLY",
}


def on_macos() -> bool:
    """sys.platform == "darwin", behind a call so type checkers on Linux keep the macOS branch."""
    return sys.platform == "darwin"


def macos_version() -> tuple[int, ...]:
    """(major, minor[, patch]) on macOS, () elsewhere."""
    if not on_macos():
        return ()
    text = platform.mac_ver()[0]
    try:
        return tuple(int(part) for part in text.split(".") if part)
    except ValueError:
        return ()


def macos_build() -> str:
    """``sw_vers -buildVersion`` (e.g. 23E224), "unknown" when it cannot be read."""
    try:
        result = subprocess.run(["sw_vers", "-buildVersion"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def unsupported_reason(compute_units: str) -> str | None:
    """Why Core ML prediction cannot run here with these compute units, or None."""
    if not on_macos():
        return f"Core ML prediction needs macOS (this node runs {sys.platform})"
    version = macos_version()
    if compute_units == "cpu_and_ne" and version and version < (13,):
        return f"compute_units cpu_and_ne needs macOS 13 (this node runs {'.'.join(map(str, version))})"
    try:
        import coremltools  # noqa: F401
    except ImportError as exc:
        return f"coremltools is not installed ({exc})"
    return None


def package_name(precision: str) -> str:
    """The artifact's package for a precision (see node_agent.artifacts)."""
    return f"model-{precision}.mlpackage"


def package_hash(manifest: dict[str, Any], package: str) -> str:
    """A content hash of one .mlpackage from the artifact manifest's per-file sha256 entries."""
    files = manifest.get("files", {})
    prefix = package + "/"
    entries = sorted((rel, sha) for rel, sha in files.items() if rel.startswith(prefix))
    digest = hashlib.sha256()
    for rel, sha in entries:
        digest.update(f"{rel}\0{sha}\n".encode())
    return digest.hexdigest()


def compiled_cache_dir() -> Path:
    """``~/.fleet-agent/coreml-cache`` (created on demand)."""
    path = Path(os.path.expanduser("~")) / ".fleet-agent" / "coreml-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


class CoreMLEngine:
    """predict() on a CompiledMLModel loaded with explicit compute units."""

    name = "coreml"

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self._model: ArtifactModel | None = None
        self._compiled: Any = None
        self._inputs: dict[str, np.ndarray] = {}
        self.compiled_path: str | None = None
        self.framework_ns = array("q")
        """Core ML's own duration of each timed predict (sum per run() call), when exposed."""

    def check_supported(self) -> str | None:
        return unsupported_reason(self.config["compute_units"])

    def compute_unit(self) -> Any:
        import coremltools as ct

        return getattr(ct.ComputeUnit, COMPUTE_UNIT_NAMES[self.config["compute_units"]])

    def _feed(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Core ML inputs: float arrays as float32 (predict casts fp16 to fp32 anyway), ints as int32."""
        assert self._model is not None
        fed: dict[str, np.ndarray] = {}
        for name, value in inputs.items():
            arr = np.asarray(value)
            kind = self._model.workload.input_dtypes.get(name, "float32")
            fed[name] = arr.astype(np.int32 if kind == "int32" else np.float32)
        return fed

    def load(self, artifact_dir: Path, manifest: dict[str, Any], bucket: str) -> ColdStart:
        import coremltools as ct
        from coremltools.models.utils import compile_model

        t0 = time.perf_counter_ns()
        model = ArtifactModel(artifact_dir, manifest, bucket)
        self._model = model
        package = package_name(self.config["precision"])
        pkg_path = Path(artifact_dir) / package
        cu = self.compute_unit()
        key = f"{package_hash(manifest, package)[:24]}-{macos_build()}-ct{ct.__version__}-{cu.name}"
        dst = compiled_cache_dir() / f"{key}.mlmodelc"  # destination must end with .mlmodelc
        compile_ns: int | None = None
        cached = dst.exists()
        if not cached:
            # compile_model moves its temp output to dst; dst must not exist beforehand
            # (docs/PLATFORM.md, "Core ML prediction").
            tmp = dst.with_name(f"{key}.tmp-{os.getpid()}.mlmodelc")
            if tmp.exists():
                shutil.rmtree(tmp)
            c0 = time.perf_counter_ns()
            compile_model(str(pkg_path), destination_path=str(tmp))
            compile_ns = time.perf_counter_ns() - c0
            try:
                os.rename(tmp, dst)  # atomic: a concurrent process never sees half a model
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)  # another process won the race; use its copy
        self.compiled_path = str(dst)
        self._inputs = self._feed(model.timing_input)
        l0 = time.perf_counter_ns()
        self._compiled = ct.models.CompiledMLModel(str(dst), compute_units=cu)
        l1 = time.perf_counter_ns()
        self._compiled.predict(self._inputs)
        t2 = time.perf_counter_ns()
        # load = reading the artifact + constructing the model, compile excluded.
        load_ns = (l1 - l0) + (l0 - t0 - (compile_ns or 0))
        return ColdStart(load_ns=load_ns, compile_ns=compile_ns, first_ns=t2 - l1, compile_cached=cached)

    def _framework_duration(self) -> int | None:
        proxy = getattr(self._compiled, "_proxy", None)
        getter = getattr(proxy, "get_last_predict_duration_in_nano_seconds", None)
        if getter is None:
            return None
        value = getter()
        return int(value) if value is not None else None

    def run(self, loops: int) -> int:
        predict, inputs = self._compiled.predict, self._inputs
        framework = 0
        t0 = time.perf_counter_ns()
        if loops == 1:
            predict(inputs)
            elapsed = time.perf_counter_ns() - t0
            framework = self._framework_duration() or 0
        else:
            for _ in range(loops):
                predict(inputs)
            elapsed = time.perf_counter_ns() - t0
        if framework:
            self.framework_ns.append(framework)
        return elapsed

    def outputs(self, inputs: dict[str, Any]) -> np.ndarray:
        assert self._model is not None, "load() first"
        result = self._compiled.predict(self._feed(inputs))
        name = self._model.workload.output_name
        value = result[name] if name in result else next(iter(result.values()))
        return np.asarray(value, dtype=np.float32)

    def peak_memory_bytes(self) -> int | None:
        return max_rss_bytes()

    def info(self) -> dict[str, Any]:
        import coremltools as ct

        info: dict[str, Any] = {
            "coremltools": ct.__version__,
            "compute_units": self.config["compute_units"],
            "precision": self.config["precision"],
            "compiled_path": self.compiled_path,
            "macos": ".".join(map(str, macos_version())),
        }
        if len(self.framework_ns):
            ordered = sorted(self.framework_ns)
            info["framework_predict_ns_p50"] = ordered[len(ordered) // 2]
            info["framework_predict_n"] = len(ordered)
        return info

    @property
    def model(self) -> ArtifactModel:
        assert self._model is not None, "load() first"
        return self._model
