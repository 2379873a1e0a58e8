"""What this node can run, found without importing heavy libraries (importlib.metadata only)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

_LIBS = ("numpy", "mlx", "coremltools")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the engine libraries, None where absent. Never imports them."""
    versions: dict[str, str | None] = {}
    for name in _LIBS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def available_engines() -> dict[str, str]:
    """Engine name -> 'available' or the reason it is not (cheap checks only)."""
    libs = library_versions()
    engines: dict[str, str] = {}
    engines["numpy"] = "available" if libs["numpy"] else "numpy is not installed"
    engines["mlx"] = "available" if libs["mlx"] else "mlx is not installed"
    if not libs["coremltools"]:
        engines["coreml"] = "coremltools is not installed"
    elif sys.platform != "darwin":
        engines["coreml"] = f"Core ML prediction needs macOS (this node runs {sys.platform})"
    else:
        engines["coreml"] = "available"
    return engines


def available_workloads() -> list[str]:
    """Names of the built-in workloads this node can load."""
    try:
        from node_agent.workloads import workload_names
    except ImportError:  # workloads not packaged in this build
        return []
    return workload_names()


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None
