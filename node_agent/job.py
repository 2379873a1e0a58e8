"""The ``run`` job: its wire shape, parsing and validation, and the memory check before it runs.

Job (one JSON line on stdin)::

    {"job_id": str, "artifacts": {"<workload>": "/abs/artifact/dir"},
     "cells": [{"cell_id": str, "workload": str, "bucket": str,
                "engine": "numpy"|"mlx"|"coreml", "config": {...}}],
     "measure": {... node_agent.measure.MeasureSettings ...}}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node_agent import measure
from node_agent.protocol import AgentExit

MEMORY_LIMIT_ENV = "FLEET_AGENT_MEMORY_LIMIT_BYTES"
"""Caps the memory the agent assumes available (headroom on shared nodes; tests)."""
RUNTIME_OVERHEAD_BYTES = 64 * 1024 * 1024
ACTIVATION_FACTOR = 64
"""Activations are estimated as this many times the input bytes (the weights are counted apart)."""


class JobError(Exception):
    """A job the agent refuses: `code` is the error event's code; the message names the field."""

    def __init__(self, code: str, message: str, exit_code: int = AgentExit.BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


@dataclass(frozen=True)
class Cell:
    cell_id: str
    workload: str
    bucket: str
    engine: str
    config: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "cell_id": self.cell_id,
            "workload": self.workload,
            "bucket": self.bucket,
            "engine": self.engine,
            "config": self.config,
        }


@dataclass(frozen=True)
class Job:
    job_id: str
    artifacts: dict[str, str]
    cells: list[Cell]
    settings: measure.MeasureSettings


def _require_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise JobError("bad_job", f"{where}{key}: a non-empty string is required, got {value!r}")
    return value


def parse_job(line: str) -> Job:
    """Parse and validate the job line (structure, names, configs, settings). Raises JobError."""
    from node_agent.engines import ENGINE_NAMES, EngineConfigError, validate_config
    from node_agent.workloads import get_workload

    if not line.strip():
        raise JobError("bad_job", "no job on stdin: expected one JSON object on the first line")
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise JobError("bad_job", f"job line is not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(raw, dict):
        raise JobError("bad_job", f"job must be a JSON object, got {type(raw).__name__}")
    job_id = _require_str(raw, "job_id", "")
    artifacts = raw.get("artifacts")
    if not isinstance(artifacts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in artifacts.items()
    ):
        raise JobError(
            "bad_job", "artifacts: an object mapping workload name -> artifact directory is required"
        )
    for name, path in artifacts.items():
        if not os.path.isabs(path):
            raise JobError("bad_job", f"artifacts.{name}: {path!r} is not an absolute path")
    cells_raw = raw.get("cells")
    if not isinstance(cells_raw, list) or not cells_raw:
        raise JobError("bad_job", "cells: a non-empty list is required")
    try:
        settings = measure.MeasureSettings.from_dict(raw.get("measure"))
    except measure.SettingsError as exc:
        raise JobError("bad_job", str(exc)) from None
    cells: list[Cell] = []
    seen: set[str] = set()
    for i, cell_raw in enumerate(cells_raw):
        where = f"cells[{i}]."
        if not isinstance(cell_raw, dict):
            raise JobError("bad_job", f"cells[{i}]: must be a JSON object")
        cell_id = _require_str(cell_raw, "cell_id", where)
        if cell_id in seen:
            raise JobError("bad_job", f"{where}cell_id: {cell_id!r} appears twice")
        seen.add(cell_id)
        workload_name = _require_str(cell_raw, "workload", where)
        try:
            workload = get_workload(workload_name)
        except ValueError as exc:
            raise JobError("unknown_workload", f"{where}workload: {exc}") from None
        bucket = _require_str(cell_raw, "bucket", where)
        try:
            workload.bucket(bucket)
        except KeyError as exc:
            raise JobError("bad_job", f"{where}bucket: {exc.args[0]}") from None
        engine = _require_str(cell_raw, "engine", where)
        if engine not in ENGINE_NAMES:
            raise JobError(
                "unknown_engine",
                f"{where}engine: unknown engine {engine!r}; known: {', '.join(ENGINE_NAMES)}",
            )
        try:
            config = validate_config(engine, cell_raw.get("config"))
        except EngineConfigError as exc:
            raise JobError("bad_job", f"{where}{exc}") from None
        if workload_name not in artifacts:
            raise JobError("bad_job", f"artifacts.{workload_name}: missing (needed by {where[:-1]})")
        cells.append(Cell(cell_id, workload_name, bucket, engine, config))
    return Job(job_id, dict(artifacts), cells, settings)


def verify_artifacts(job: Job) -> dict[str, dict[str, Any]]:
    """verify_artifact for every artifact the cells use (hash check). Raises JobError bad_artifact."""
    from node_agent.artifacts import ArtifactError, verify_artifact

    manifests: dict[str, dict[str, Any]] = {}
    for workload in sorted({c.workload for c in job.cells}):
        path = job.artifacts[workload]
        try:
            manifest = verify_artifact(Path(path))
        except (ArtifactError, OSError, ValueError) as exc:
            raise JobError("bad_artifact", f"artifacts.{workload}: {path}: {exc}") from None
        manifests[workload] = dict(manifest)
    return manifests


def available_memory_bytes() -> int | None:
    """Memory the agent may use: MemAvailable (Linux) or physical memory (macOS), capped by the env."""
    available: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            available = None
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    if limit:
        try:
            cap = int(limit)
        except ValueError:
            cap = None
        if cap is not None:
            available = cap if available is None else min(available, cap)
    return available


def estimate_memory_bytes(cell: Cell, artifact_dir: str) -> dict[str, int]:
    """inputs + weights + an activations estimate for one cell (checked before allocating)."""
    from node_agent.workloads import get_workload

    bucket = get_workload(cell.workload).bucket(cell.bucket)
    input_bytes = 0
    for shape in bucket.inputs.values():
        count = 1
        for dim in shape:
            count *= dim
        input_bytes += 4 * count
    weights_path = Path(artifact_dir) / "weights.npz"
    weights_bytes = weights_path.stat().st_size if weights_path.exists() else 0
    # Engines hold the npz arrays plus a converted copy (fp16/fp32/device): count weights twice.
    activations = ACTIVATION_FACTOR * input_bytes
    total = 2 * weights_bytes + input_bytes + activations + RUNTIME_OVERHEAD_BYTES
    return {"inputs": input_bytes, "weights": weights_bytes, "activations": activations, "total": total}


def check_memory(job: Job) -> None:
    """JobError too_large when a cell's estimate exceeds the available memory."""
    available = available_memory_bytes()
    if available is None:
        return
    for cell in job.cells:
        estimate = estimate_memory_bytes(cell, job.artifacts[cell.workload])
        if estimate["total"] > available:
            raise JobError(
                "too_large",
                f"cell {cell.cell_id} ({cell.workload}/{cell.bucket}, {cell.engine}): estimated "
                f"{estimate['total'] / 2**20:.1f} MiB (inputs {estimate['inputs']} B, weights "
                f"{estimate['weights']} B, activations ~{estimate['activations']} B, runtime "
                f"{RUNTIME_OVERHEAD_BYTES // 2**20} MiB) exceeds the {available / 2**20:.1f} MiB available",
            )
