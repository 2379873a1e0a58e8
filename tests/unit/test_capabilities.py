"""The cheap capability readers `probe` uses: versions from the metadata files agree with
importlib.metadata, and a probe from the real zipapp imports none of the costly modules."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fleet_tui.fleet.deploy import build_agent_zipapp
from node_agent import capabilities, facts, workloads
from node_agent.__main__ import hello_fields, new_sha256

INSTALLED = ("numpy", "coremltools", "mlx", "textual")


def metadata_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@pytest.mark.parametrize("name", INSTALLED)
def test_cheap_version_reader_agrees_with_importlib_metadata(name: str) -> None:
    expected = importlib.metadata.version(name)  # installed in the dev venv: a miss is a failure
    assert capabilities.read_versions([name]) == {name: expected}


def test_reader_agrees_on_spellings_and_absent_packages() -> None:
    names = ["MLX", "mlx-cpu", "mlx_cpu", "Typing.Extensions", "no-such-package-here"]
    assert capabilities.read_versions(names) == {n: metadata_version(n) for n in names}
    assert capabilities.read_versions(["no-such-package-here"]) == {"no-such-package-here": None}
    libs = ("numpy", "mlx", "coremltools")
    assert capabilities.library_versions() == {n: metadata_version(n) for n in libs}


def _dist(site: Path, dirname: str, metadata: str, *, egg: bool = False) -> None:
    directory = site / dirname
    directory.mkdir(parents=True)
    (directory / ("PKG-INFO" if egg else "METADATA")).write_text(metadata)


def test_reader_follows_the_path_order_and_formats_importlib_reads(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "Foo.Bar-1.0.dist-info", "Metadata-Version: 2.1\nName: Foo.Bar\nVersion: 1.0\n")
    _dist(second, "foo_bar-2.0.dist-info", "Metadata-Version: 2.1\nName: foo_bar\nVersion: 2.0\n")
    _dist(second, "legacy-0.3.egg-info", "Metadata-Version: 1.0\nName: legacy\nVersion:  0.3 \n", egg=True)
    body_version = "Name: late\n\nVersion: 9.9 (in the body, not a header)\n"
    _dist(second, "late-1.dist-info", body_version)
    paths = [str(tmp_path / "missing"), str(first), str(second)]
    names = ["foo-bar", "FOO_BAR", "legacy", "late", "absent"]
    expected = {}
    for name in names:
        found = next(iter(importlib.metadata.Distribution.discover(name=name, path=paths)), None)
        expected[name] = found.version if found is not None else None
    assert expected == {"foo-bar": "1.0", "FOO_BAR": "1.0", "legacy": "0.3 ", "late": None, "absent": None}
    assert capabilities.read_versions(names, paths) == expected


def test_engines_and_facts_use_the_same_fields_as_before() -> None:
    libs = capabilities.library_versions()
    assert capabilities.available_engines(libs) == capabilities.available_engines()
    hello = hello_fields("source")
    assert hello["machine"] == platform.machine()
    assert hello["libs"] == libs and hello["workloads"] == workloads.workload_names()
    common = facts._common_facts()
    assert (common["hostname"], common["kernel"], common["machine"]) == (
        socket.gethostname(),
        platform.release() or None,
        platform.machine() or None,
    )


def test_builtin_sha256_matches_hashlib() -> None:
    data = bytes(range(256)) * 4099
    hasher = new_sha256()
    hasher.update(data[:1000])
    hasher.update(data[1000:])
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


# Each is what a probe used to pay for (python -X importtime): none is needed to answer it.
COSTLY = (
    "importlib.metadata",
    "email",
    "zipfile",
    "dataclasses",
    "inspect",
    "platform",
    "socket",
    "_hashlib",
)


def test_probe_from_the_zipapp_imports_only_what_it_reads(tmp_path: Path) -> None:
    bundle = build_agent_zipapp(tmp_path)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-u", str(bundle.path), "probe"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["type"] for e in events] == ["hello", "facts", "done"]
    assert events[0]["agent_sha"] == bundle.sha256  # the builtin sha256 checked the archive
    assert events[0]["libs"] == events[1]["facts"]["libs"] == capabilities.library_versions()
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", done.stderr, re.MULTILINE))
    assert "node_agent.facts" in imported and "node_agent.workloads" in imported  # the parse works
    assert not {m for m in imported if m.split(".")[0] in COSTLY or m in COSTLY}
    assert "node_agent.workloads.definitions" not in imported  # names only, no definitions
    if sys.platform != "darwin":
        assert "node_agent.facts_macos" not in imported  # the macOS parsers are not compiled here


def test_workload_definitions_load_on_first_use() -> None:
    code = (
        "import sys\n"
        "import node_agent.workloads as w\n"
        "print('node_agent.workloads.definitions' in sys.modules, w.workload_names())\n"
        "w.get_workload('mlp')\n"
        "print('node_agent.workloads.definitions' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    first, second = done.stdout.splitlines()
    assert first.startswith("False [") and "'mlp'" in first
    assert second == "True"


def test_workload_names_match_the_definitions() -> None:
    from node_agent.workloads import definitions

    assert tuple(w.name for w in definitions._WORKLOADS) == workloads.WORKLOAD_NAMES
    assert workloads.get_workload is definitions.get_workload
    assert workloads.Workload is definitions.Workload
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = workloads.no_such_name
