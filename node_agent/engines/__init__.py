"""Engines: numpy (reference), MLX and Core ML behind one small protocol (pyperf's bench_time_func).

An engine loads one artifact's model for one bucket, then the harness calls ``run(loops)``;
the engine owns the timed region and returns elapsed nanoseconds (MLX ends it with
``mx.eval``, Core ML times the synchronous ``predict``, numpy times the call).

This package module is stdlib only at import time: the agent's parent process imports it to
validate job configs. The engine modules import numpy / mlx / coremltools lazily.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ENGINE_NAMES = ("numpy", "mlx", "coreml")

CONFIG_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    # Option order is the order of the parts in the controller's engine key ("mlx:cpu:fp32").
    "numpy": {"dtype": ("fp64", "fp32")},
    "mlx": {"device": ("gpu", "cpu"), "dtype": ("fp16", "fp32")},
    "coreml": {
        "compute_units": ("all", "cpu_and_ne", "cpu_and_gpu", "cpu_only"),
        "precision": ("fp16", "fp32"),
    },
}
"""Engine -> config key -> allowed values. The one engine-option table: the controller's spec reads it."""

CONFIG_DEFAULTS: dict[str, dict[str, str]] = {
    "numpy": {"dtype": "fp64"},
    "mlx": {"device": "gpu", "dtype": "fp32"},
    "coreml": {"compute_units": "all", "precision": "fp16"},
}
"""Engine -> config key -> the value used when a config leaves the key out (spec and agent alike)."""


class EngineConfigError(ValueError):
    """An engine name or config value is not known; the message names the field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def validate_config(engine: str, config: Any) -> dict[str, str]:
    """The engine config with defaults filled in. Raises EngineConfigError naming the field."""
    if engine not in CONFIG_CHOICES:
        raise EngineConfigError(
            "engine", f"unknown engine {engine!r}; known engines: {', '.join(ENGINE_NAMES)}"
        )
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise EngineConfigError("config", "must be a JSON object")
    choices = CONFIG_CHOICES[engine]
    unknown = sorted(set(config) - set(choices))
    if unknown:
        raise EngineConfigError(
            f"config.{unknown[0]}", f"not a {engine} setting (known: {', '.join(sorted(choices))})"
        )
    normalized: dict[str, str] = {}
    for key, allowed in choices.items():
        value = config.get(key, CONFIG_DEFAULTS[engine][key])
        if value not in allowed:
            raise EngineConfigError(f"config.{key}", f"{value!r} is not one of {', '.join(allowed)}")
        normalized[key] = value
    return normalized


PRECISION_OPTION: dict[str, str] = {"numpy": "dtype", "mlx": "dtype", "coreml": "precision"}
"""Which config key holds an engine's numeric precision."""


def precision_of(engine: str, config: Mapping[str, str]) -> str:
    """The tolerance class ("fp32" | "fp16") an engine config computes in and is judged against.

    The one derivation of "precision" (agent numeric check, controller gates and spec). A key left
    out takes its default; numpy's fp64 is the reference itself, so numpy is judged as fp32.
    """
    if engine == "numpy":
        return "fp32"
    option = PRECISION_OPTION.get(engine)
    if option is None:
        return ""
    return config.get(option) or CONFIG_DEFAULTS[engine][option]


@dataclass(frozen=True)
class ColdStart:
    """What a fresh process paid before its first result (ns; compile None when not applicable)."""

    load_ns: int
    compile_ns: int | None
    first_ns: int
    compile_cached: bool | None = None
    """Core ML: True when the compiled model came from the persistent cache."""

    def as_ms(self) -> dict[str, float | None]:
        return {
            "load_ms": self.load_ns / 1e6,
            "compile_ms": None if self.compile_ns is None else self.compile_ns / 1e6,
            "first_ms": self.first_ns / 1e6,
        }


class Engine(Protocol):
    """The contract between the harness and a backend."""

    name: str
    config: dict[str, str]

    def check_supported(self) -> str | None:
        """None when this node can run the config, else the reason it cannot."""
        ...

    def load(self, artifact_dir: Path, manifest: dict[str, Any], bucket: str) -> ColdStart:
        """Load weights and model, prepare the bucket's timing input, run the first call."""
        ...

    def run(self, loops: int) -> int:
        """``loops`` back-to-back calls on the prepared input; elapsed ns (the timed region)."""
        ...

    def outputs(self, inputs: dict[str, Any]) -> Any:
        """The model's output for ``inputs`` as a numpy array (for numeric gates)."""
        ...

    def peak_memory_bytes(self) -> int | None:
        """Peak memory the engine saw (MLX's allocator, else the process's max RSS)."""
        ...

    def info(self) -> dict[str, Any]:
        """Small facts worth recording (device, versions, cache paths)."""
        ...


def max_rss_bytes() -> int:
    """The process's peak resident set size (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024


def make_engine(engine: str, config: dict[str, Any]) -> Engine:
    """An engine instance for a validated config (imports its module lazily)."""
    normalized = validate_config(engine, config)
    if engine == "numpy":
        from node_agent.engines.numpy_ref import NumpyEngine

        return NumpyEngine(normalized)
    if engine == "mlx":
        from node_agent.engines.mlx_engine import MlxEngine

        return MlxEngine(normalized)
    from node_agent.engines.coreml_engine import CoreMLEngine

    return CoreMLEngine(normalized)
