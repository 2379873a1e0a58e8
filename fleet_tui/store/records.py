"""What the store returns: frozen records, and the formats of its columns (timestamps, sample BLOBs)."""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class StoreError(Exception):
    """A store problem: unreadable or too-new database, unknown run or cell, invalid value."""


@dataclass(frozen=True)
class RunRecord:
    id: int
    name: str
    status: str
    spec_toml: str
    spec: dict[str, Any]
    """The spec as JSON data (SweepSpec.to_json)."""
    contract_hash: str
    versions: dict[str, Any]
    started_at: str
    finished_at: str | None
    exit_code: int | None


@dataclass(frozen=True)
class RunSummary:
    """One line of `runs`: the run with its cell and gate counts."""

    id: int
    name: str
    status: str
    contract_hash: str
    started_at: str
    finished_at: str | None
    exit_code: int | None
    nodes: tuple[str, ...]
    cells: dict[str, int] = field(default_factory=dict)
    """Cell state -> count (states with no cells are left out)."""
    gates: dict[str, int] = field(default_factory=dict)
    """Verdict -> count, all of pass / fail / inconclusive / skipped present."""

    @property
    def gates_passed(self) -> bool | None:
        """None before any gate was evaluated."""
        if not any(self.gates.values()):
            return None
        return self.gates.get("fail", 0) == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "contract_hash": self.contract_hash,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "exit_code": self.exit_code,
            "nodes": list(self.nodes),
            "cells": dict(self.cells),
            "gates": dict(self.gates),
            "gates_passed": self.gates_passed,
        }


@dataclass(frozen=True)
class CellRow:
    id: int
    run_id: int
    node: str
    workload: str
    bucket: str
    engine: str
    config: dict[str, str]
    key: str
    state: str
    attempts: int
    reason: str | None
    started_at: str | None
    finished_at: str | None

    def job_cell(self) -> dict[str, Any]:
        """The cell entry of an agent job; the wire cell_id is the store id as a string."""
        return {
            "cell_id": str(self.id),
            "workload": self.workload,
            "bucket": self.bucket,
            "engine": self.engine,
            "config": dict(self.config),
        }


@dataclass(frozen=True)
class SampleBatch:
    run_idx: int
    phase: str
    batch_seq: int
    attempt: int
    ns: list[int]
    t_ns: list[int]


@dataclass(frozen=True)
class ThermalPoint:
    node: str
    cell_id: int | None
    t_ns: int
    state: dict[str, Any]


def pack_ns(values: Sequence[int]) -> bytes:
    """int64 little-endian bytes of `values` (the samples BLOB format)."""
    packed = array("q", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_ns(blob: bytes) -> list[int]:
    """Inverse of `pack_ns`."""
    values = array("q")
    values.frombytes(blob)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def now_iso() -> str:
    """UTC timestamp, ISO-8601 with milliseconds (the store's time format)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def elapsed_s(started: str | None, finished: str | None) -> float | None:
    """Seconds between two store timestamps; None when either is missing or unreadable."""
    if not started or not finished:
        return None
    try:
        return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except ValueError:
        return None
