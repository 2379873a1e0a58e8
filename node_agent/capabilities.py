"""What this node can run, found without importing heavy libraries.

`probe` runs on every fleet status refresh, so this module imports nothing beyond `os` and `sys`
(both loaded at interpreter start). Library versions are read from the installed metadata files
directly (`read_versions`), which gives what ``importlib.metadata.version`` gives at a fraction of
its import cost (it pulls in email, zipfile, pathlib, inspect, ...).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

_LIBS = ("numpy", "mlx", "coremltools")
_METADATA_DIRS = {".dist-info": "METADATA", ".egg-info": "PKG-INFO"}


def normalize_name(name: str) -> str:
    """A distribution name as importlib.metadata compares it: runs of ``-_.`` -> ``_``, lowercase."""
    out: list[str] = []
    for char in name.lower():
        if char in "-_.":
            if not out or out[-1] != "_":
                out.append("_")
        else:
            out.append(char)
    return "".join(out)


def _metadata_version(path: str) -> str | None:
    """The ``Version:`` header of a METADATA / PKG-INFO file (headers end at the first blank line)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.rstrip("\r\n"):  # the blank line that ends the headers
                    break
                key, sep, value = line.partition(":")
                if sep and key.lower() == "version":
                    return value.lstrip(" \t").rstrip("\r\n")  # as the email header parser reads it
    except OSError:
        pass
    return None


def _needs_full_lookup(entry: str) -> bool:
    """A sys.path entry this reader cannot list but importlib.metadata can: an existing zip file."""
    if not entry or os.path.isdir(entry) or not os.path.isfile(entry):
        return False
    return os.path.realpath(entry) != os.path.realpath(sys.argv[0] if sys.argv else "")


def read_versions(names: Iterable[str], paths: Sequence[str] | None = None) -> dict[str, str | None]:
    """Installed version of each distribution, None where absent, as ``importlib.metadata.version``.

    Same search: the first ``<name>-*.dist-info`` (or ``.egg-info``) directory in `paths`
    (default sys.path) order, names compared normalised. Zip files on the path other than the
    running agent archive are the one case read through importlib.metadata itself.
    """
    names = list(names)
    wanted = {normalize_name(n) for n in names}
    found: dict[str, str | None] = {}
    for entry in sys.path if paths is None else paths:
        if len(found) == len(wanted):
            break
        if _needs_full_lookup(entry):
            return _importlib_versions(names)
        try:
            children = os.listdir(entry or ".")  # unsorted, as importlib.metadata lists them
        except OSError:
            continue
        for child in children:
            stem, dot, suffix = child.lower().rpartition(".")
            metadata_file = _METADATA_DIRS.get(dot + suffix)
            if metadata_file is None:
                continue
            key = normalize_name(stem.partition("-")[0])
            if key in wanted and key not in found:
                found[key] = _metadata_version(os.path.join(entry or ".", child, metadata_file))
    return {name: found.get(normalize_name(name)) for name in names}


def _importlib_versions(names: Iterable[str]) -> dict[str, str | None]:
    import importlib.metadata

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def library_versions() -> dict[str, str | None]:
    """Installed versions of the engine libraries, None where absent. Never imports them."""
    return read_versions(_LIBS)


def available_engines(libs: dict[str, str | None] | None = None) -> dict[str, str]:
    """Engine name -> 'available' or the reason it is not (cheap checks only).

    `libs` is `library_versions()` when the caller already has it (saves a second scan).
    """
    libs = library_versions() if libs is None else libs
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
    import importlib.util

    return importlib.util.find_spec(name) is not None
