"""The acceptance bundle: everything a run measured and concluded, hashed, in one folder or
``.tar.gz``; its verification (hashes, then the summaries and gate verdicts recomputed from the
raw samples); and its import into another store.

Layout (paths inside the bundle; a tarball holds them under one top folder):

    bundle.json             format, the run's identity and status, counts, this layout's notes
    spec/spec.toml          the sweep spec as written
    spec/spec.json          the spec as data (with its contract hash)
    spec/contract.json      the input contract (buckets, shapes, budgets) and its sha256
    nodes.json              the run's nodes as the inventory described them (tier, prices)
    facts.json              the facts snapshots probed for the run (start / end, per node)
    artifacts.json          the run's artifacts: id (content hash), workload, manifest
    cells.json              every cell: node, workload, bucket, engine config, state, attempts,
                            and its sample files
    samples/cN/rR.PHASE.ns      raw samples of cell N, run R, phase (warmup|measure|sustained):
    samples/cN/rR.PHASE.t_ns    int64 little-endian nanoseconds, one per sample (.t_ns: each
                                sample's start time on the node's clock; absent when not sent)
    summaries.json          cell id -> result status and the stored summary (ns)
    energy.json             (only when cells were measured with a power reader) one row per
                            cell: reader, J/inference with its interval, watts, idle watts
    gates.json              the stored gate verdicts
    thermal.json            the thermal timeline (node, cell, t_ns, conditions)
    exports/...             the comparison table as CSV / Markdown / JSON and the HTML report
    charts/...              the report's charts as SVG files
    SHA256SUMS              sha256 of every other file (`sha256sum -c SHA256SUMS` reads it)

Only a cell's current attempt is bundled (as `Store.samples` reads it); its batches are joined
per run and phase. The same run bundled twice gives byte-identical files and tarball (sorted
members, fixed owner and modes, every mtime the run's start, no gzip timestamp).

A run's identity across stores is (name, contract hash, started_at): `import_bundle` of a run
the store already has changes nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import sqlite3
import sys
import tarfile
import tempfile
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final

from fleet_tui import __version__
from fleet_tui.analysis.gates import evaluate_gates
from fleet_tui.export.recompute import DEFAULT_SETTINGS, RunSamples, Settings, differences, recompute
from fleet_tui.model.gates import CellOutcome, GateVerdict
from fleet_tui.store import SAMPLE_PHASES, Store, StoreError, now_iso
from fleet_tui.store.results import ENERGY_COLUMNS, energy_row

BUNDLE_FORMAT: Final = "fleet-tui.bundle/1"
"""History: 1 -- first version (this layout)."""
SUMS: Final = "SHA256SUMS"
MANIFEST: Final = "bundle.json"
TAR_SUFFIXES: Final = (".tar.gz", ".tgz")
MAX_BUNDLE_BYTES: Final = 8 << 30
"""A tarball unpacking to more than this is refused (untrusted input: bounded memory)."""
MAX_MEMBERS: Final = 1_000_000
SAMPLE_ENCODING: Final = "int64 little-endian nanoseconds, one per sample"


class BundleError(Exception):
    """The input is not a readable bundle (missing, not a folder or tarball, no SHA256SUMS)."""


class BundleTampered(BundleError):
    """The bundle reads but does not verify (`report` says why): it is never imported."""

    def __init__(self, report: VerifyReport) -> None:
        listed = "; ".join(str(p) for p in report.problems[:5])
        more = f" (and {len(report.problems) - 5} more)" if len(report.problems) > 5 else ""
        super().__init__(f"{report.source}: does not verify, not imported: {listed}{more}")
        self.report = report


# --- writing ---------------------------------------------------------------------------------------


def is_tarball(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(TAR_SUFFIXES)


def pack_le(values: Iterable[int]) -> bytes:
    packed = array("q", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_le(blob: bytes, where: str) -> array[int]:
    if len(blob) % 8:
        raise ValueError(f"{where}: {len(blob)} bytes is not a whole number of int64 samples")
    values = array("q")
    values.frombytes(blob)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def collect(store: Store, run_id: int, extra: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    """Every file of the bundle of run `run_id` (path -> bytes), SHA256SUMS included.

    `extra` adds files (the exports and charts) under their paths.
    """
    run = store.run(run_id)
    cells = store.cells_for(run_id)
    files: dict[str, bytes] = {}
    cell_entries = []
    sample_total = 0
    for cell in cells:
        joined: dict[tuple[int, str], tuple[list[int], list[int], bool]] = {}
        for batch in store.sample_batches(cell.id):
            ns, t_ns, timed = joined.setdefault((batch.run_idx, batch.phase), ([], [], True))
            ns.extend(batch.ns)
            t_ns.extend(batch.t_ns)
            # A batch without start times makes the joined times meaningless: drop them.
            joined[(batch.run_idx, batch.phase)] = (ns, t_ns, timed and len(batch.t_ns) == len(batch.ns))
        sample_files = []
        for (run_idx, phase), (ns, t_ns, timed) in sorted(
            joined.items(), key=lambda item: (item[0][0], SAMPLE_PHASES.index(item[0][1]))
        ):
            base = f"samples/c{cell.id}/r{run_idx}.{phase}"
            files[f"{base}.ns"] = pack_le(ns)
            entry: dict[str, Any] = {"run": run_idx, "phase": phase, "count": len(ns), "ns": f"{base}.ns"}
            if timed and t_ns:
                files[f"{base}.t_ns"] = pack_le(t_ns)
                entry["t_ns"] = f"{base}.t_ns"
            sample_files.append(entry)
            sample_total += len(ns)
        cell_entries.append(
            {
                "id": cell.id,
                "node": cell.node,
                "workload": cell.workload,
                "bucket": cell.bucket,
                "engine": cell.engine,
                "config": cell.config,
                "key": cell.key,
                "state": cell.state,
                "attempts": cell.attempts,
                "reason": cell.reason,
                "started_at": cell.started_at,
                "finished_at": cell.finished_at,
                "samples": sample_files,
            }
        )
    outcomes = store.outcomes(run_id)
    summaries = {}
    for outcome in outcomes:
        summary = store.result(outcome.cell_id)
        if summary is not None:
            summaries[str(outcome.cell_id)] = {"state": outcome.state, "summary": summary}
    node_names = sorted({c.node for c in cells})
    spec_json = run.spec
    files["spec/spec.toml"] = run.spec_toml.encode("utf-8")
    files["spec/spec.json"] = _json(spec_json)
    files["spec/contract.json"] = _json(
        {"contract_hash": run.contract_hash, "workloads": spec_json.get("workloads", [])}
    )
    files["nodes.json"] = _json([n for n in store.nodes() if n["name"] in node_names])
    energy_rows = store.energy(run_id)
    if energy_rows:
        files["energy.json"] = _json([{k: v for k, v in r.items() if k != "detail"} for r in energy_rows])
    files["facts.json"] = _json(store.probes(run_id))
    artifact_ids = run.versions.get("artifacts") if isinstance(run.versions.get("artifacts"), dict) else {}
    artifacts = {}
    for workload, artifact_id in sorted((artifact_ids or {}).items()):
        manifest = store.artifact(str(artifact_id))
        artifacts[str(artifact_id)] = {"workload": workload, "manifest": manifest}
    files["artifacts.json"] = _json(artifacts)
    files["cells.json"] = _json(cell_entries)
    files["summaries.json"] = _json(summaries)
    files["gates.json"] = _json([_verdict_json(v) for v in store.gate_verdicts(run_id)])
    files["thermal.json"] = _json(
        [
            {"node": p.node, "cell_id": p.cell_id, "t_ns": p.t_ns, "state": p.state}
            for p in store.thermal(run_id)
        ]
    )
    for path, data in (extra or {}).items():
        _check_member_name(path)
        files[path] = data
    files[MANIFEST] = _json(
        {
            "format": BUNDLE_FORMAT,
            "fleet_tui": __version__,
            "run": {
                "id": run.id,
                "name": run.name,
                "status": run.status,
                "exit_code": run.exit_code,
                "contract_hash": run.contract_hash,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "versions": run.versions,
            },
            "counts": {
                "cells": len(cells),
                "nodes": len(node_names),
                "samples": sample_total,
                "summaries": len(summaries),
                "gate_verdicts": len(store.gate_verdicts(run_id)),
            },
            "sample_encoding": SAMPLE_ENCODING,
            "identity": "a run is the same run in every store when name, contract_hash and started_at match",
        }
    )
    files[SUMS] = sums_text(files)
    return files


def sums_text(files: Mapping[str, bytes]) -> bytes:
    """SHA256SUMS of every file but itself, sorted by path (sha256sum's format)."""
    lines = [f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files) if p != SUMS]
    return "".join(lines).encode("utf-8")


def _verdict_json(v: GateVerdict) -> dict[str, Any]:
    return {
        "gate": v.gate,
        "verdict": v.verdict,
        "node": v.node,
        "workload": v.workload,
        "bucket": v.bucket,
        "cell_id": v.cell_id,
        "cell_key": v.cell_key,
        "detail": v.detail,
        "value": v.value,
        "threshold": v.threshold,
    }


def _mtime(started_at: str) -> int:
    try:
        return max(0, int(datetime.fromisoformat(started_at).timestamp()))
    except ValueError:
        return 0


def write(files: Mapping[str, bytes], output: Path, top: str | None = None) -> Path:
    """Write a bundle's files to `output`: a ``.tar.gz`` / ``.tgz`` tarball (under folder `top`,
    default the file name without its suffix) or else a new (or empty) folder."""
    manifest = json.loads(files[MANIFEST])
    mtime = _mtime(str(manifest.get("run", {}).get("started_at", "")))
    if is_tarball(output):
        name = output.name
        top = top or next(name[: -len(s)] for s in TAR_SUFFIXES if name.lower().endswith(s)) or "bundle"
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".bundle-", dir=output.parent)
        try:
            with (
                os.fdopen(fd, "wb") as raw,
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                dirs = sorted(
                    {str(p) for path in files for p in PurePosixPath(path).parents if str(p) != "."}
                )
                for entry in [top, *(f"{top}/{d}" for d in dirs)]:
                    info = _tarinfo(entry, mtime, directory=True)
                    tar.addfile(info)
                for path in sorted(files):
                    info = _tarinfo(f"{top}/{path}", mtime, size=len(files[path]))
                    tar.addfile(info, io.BytesIO(files[path]))
            os.replace(tmp, output)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return output
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise BundleError(f"{output}: exists and is not an empty folder; give a new path")
    for path in sorted(files):
        target = output / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[path])
    return output


def _tarinfo(name: str, mtime: int, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = 0o644
    return info


# --- reading ----------------------------------------------------------------------------------------


def _check_member_name(name: str) -> str:
    """A safe relative POSIX path, or ValueError (absolute, '..', backslashes, empty parts)."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe path in bundle: {name!r}")
    if any(ord(ch) < 32 for ch in name):
        raise ValueError(f"unsafe path in bundle: {name.encode('unicode_escape').decode()!r}")
    return name


@dataclass
class Bundle:
    """A bundle read into memory: its files (path -> bytes) and where it came from."""

    source: Path
    files: dict[str, bytes]
    unsafe: list[str] = field(default_factory=list)
    """Members refused while reading (links, devices, unsafe paths): a tampered bundle."""

    def json(self, path: str) -> Any:
        if path not in self.files:
            raise KeyError(path)
        return json.loads(self.files[path])


def read_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read a bundle folder or tarball; BundleError when it is not a readable bundle."""
    source = Path(path)
    if not source.exists():
        raise BundleError(f"{source}: no such file or folder")
    files: dict[str, bytes] = {}
    unsafe: list[str] = []
    total = 0
    if source.is_dir():
        for file in sorted(source.rglob("*")):
            rel = file.relative_to(source).as_posix()
            if file.is_symlink() or (not file.is_file() and not file.is_dir()):
                unsafe.append(f"{rel} (not a regular file)")
                continue
            if file.is_file():
                total += file.stat().st_size
                if total > MAX_BUNDLE_BYTES:
                    raise BundleError(f"{source}: larger than {MAX_BUNDLE_BYTES >> 30} GiB; refused")
                files[rel] = file.read_bytes()
    elif source.is_file():
        try:
            with tarfile.open(source, mode="r:*") as tar:
                members = 0
                for member in tar:
                    members += 1
                    if members > MAX_MEMBERS:
                        raise BundleError(f"{source}: more than {MAX_MEMBERS} members; refused")
                    if member.isdir():
                        continue
                    if not member.isfile():
                        unsafe.append(f"{member.name} (not a regular file)")
                        continue
                    total += member.size
                    if total > MAX_BUNDLE_BYTES:
                        raise BundleError(
                            f"{source}: unpacks to more than {MAX_BUNDLE_BYTES >> 30} GiB; refused"
                        )
                    try:
                        name = _check_member_name(member.name)
                    except ValueError as exc:
                        unsafe.append(str(exc))
                        continue
                    handle = tar.extractfile(member)
                    if handle is not None:
                        files[name] = handle.read()
        except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BundleError(f"{source}: not a readable tarball: {exc}") from None
        files = _strip_top(files)
    else:
        raise BundleError(f"{source}: not a file or folder")
    if SUMS not in files:
        raise BundleError(f"{source}: not a fleet-tui bundle (no {SUMS})")
    return Bundle(source, files, unsafe)


def _strip_top(files: dict[str, bytes]) -> dict[str, bytes]:
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) == 1 and all("/" in name for name in files):
        return {name.split("/", 1)[1]: data for name, data in files.items()}
    return files


def parse_sums(data: bytes) -> tuple[dict[str, str], list[str]]:
    """SHA256SUMS -> (path -> hex digest, malformed lines)."""
    sums: dict[str, str] = {}
    bad: list[str] = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        digest, sep, path = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            bad.append(f"{SUMS} line {number}: not '<sha256>  <path>'")
            continue
        sums[path.lstrip("*")] = digest
    return sums, bad


# --- verification -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    kind: str
    """changed | missing | extra | unsafe | unreadable | summary | gate."""
    where: str
    """The file, or the cell ("node workload/bucket/engine")."""
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.message}" if self.message else f"{self.kind}: {self.where}"


@dataclass
class VerifyReport:
    source: Path
    files: int = 0
    cells_checked: int = 0
    verdicts_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": str(self.source),
            "ok": self.ok,
            "files": self.files,
            "cells_checked": self.cells_checked,
            "verdicts_checked": self.verdicts_checked,
            "problems": [{"kind": p.kind, "where": p.where, "message": p.message} for p in self.problems],
        }


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check every hash, then recompute summaries and gate verdicts from the raw samples.

    BundleError when the input is not a bundle at all; otherwise every problem is in the report.
    """
    return verify_bundle(read_bundle(path))[0]


def verify_bundle(bundle: Bundle) -> tuple[VerifyReport, Content | None]:
    """`verify` of a bundle already read; also its decoded content (None when unreadable)."""
    report = VerifyReport(bundle.source, files=len(bundle.files))
    report.problems += [Problem("unsafe", name, "refused") for name in bundle.unsafe]
    sums, malformed = parse_sums(bundle.files[SUMS])
    report.problems += [Problem("unreadable", SUMS, line) for line in malformed]
    for name in sorted(sums):
        if name not in bundle.files:
            report.problems.append(Problem("missing", name, "listed in SHA256SUMS but absent"))
        elif hashlib.sha256(bundle.files[name]).hexdigest() != sums[name]:
            report.problems.append(Problem("changed", name, "sha256 differs from SHA256SUMS"))
    for name in sorted(set(bundle.files) - set(sums) - {SUMS}):
        report.problems.append(Problem("extra", name, "not listed in SHA256SUMS"))
    try:
        content = load_content(bundle)
    except ContentError as exc:
        report.problems.append(Problem("unreadable", exc.path, exc.message))
        return report, None
    report.problems += content.problems
    _recheck(content, report)
    return report, content


class ContentError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass
class Content:
    """A bundle's data, decoded."""

    manifest: dict[str, Any]
    spec_toml: str
    spec: dict[str, Any]
    cells: list[dict[str, Any]]
    samples: dict[int, list[tuple[int, str, array[int], array[int]]]]
    """cell id -> [(run, phase, ns, t_ns)] in bundle order."""
    summaries: dict[int, dict[str, Any]]
    gates: list[dict[str, Any]]
    thermal: list[dict[str, Any]]
    nodes: list[dict[str, Any]]
    facts: list[dict[str, Any]]
    artifacts: dict[str, dict[str, Any]]
    problems: list[Problem] = field(default_factory=list)


def _load(bundle: Bundle, path: str, kind: type) -> Any:
    try:
        value = bundle.json(path)
    except KeyError:
        raise ContentError(path, "missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContentError(path, f"not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise ContentError(path, f"expected a JSON {kind.__name__}")
    return value


def load_content(bundle: Bundle) -> Content:
    manifest = _load(bundle, MANIFEST, dict)
    if manifest.get("format") != BUNDLE_FORMAT:
        raise ContentError(MANIFEST, f"format {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    if "spec/spec.toml" not in bundle.files:
        raise ContentError("spec/spec.toml", "missing")
    try:
        spec_toml = bundle.files["spec/spec.toml"].decode("utf-8")
    except UnicodeDecodeError:
        raise ContentError("spec/spec.toml", "not UTF-8 text") from None
    cells = _load(bundle, "cells.json", list)
    raw_summaries = _load(bundle, "summaries.json", dict)
    content = Content(
        manifest=manifest,
        spec_toml=spec_toml,
        spec=_load(bundle, "spec/spec.json", dict),
        cells=cells,
        samples={},
        summaries={},
        gates=_load(bundle, "gates.json", list),
        thermal=_load(bundle, "thermal.json", list),
        nodes=_load(bundle, "nodes.json", list),
        facts=_load(bundle, "facts.json", list),
        artifacts=_load(bundle, "artifacts.json", dict),
    )
    _check_entries("cells.json", cells, _CELL_FIELDS)
    _check_entries("gates.json", content.gates, _GATE_FIELDS)
    _check_entries("thermal.json", content.thermal, _THERMAL_FIELDS)
    _check_entries("facts.json", content.facts, _PROBE_FIELDS)
    _check_entries("nodes.json", content.nodes, {"name": str})
    for key, value in content.artifacts.items():
        if not isinstance(value, dict) or not isinstance(value.get("manifest"), dict | None):
            raise ContentError("artifacts.json", f"entry {key!r} is not an artifact object")
    run = manifest.get("run")
    if not isinstance(run, dict) or not all(isinstance(run.get(k), str) for k in _RUN_IDENTITY):
        raise ContentError(MANIFEST, f"run needs {', '.join(_RUN_IDENTITY)} as strings")
    for cell in cells:
        try:
            cell_id = int(cell["id"])
            entries = []
            for entry in cell.get("samples") or ():
                ns_path = str(entry["ns"])
                if ns_path not in bundle.files:
                    raise ContentError(ns_path, "missing (named in cells.json)")
                ns = unpack_le(bundle.files[ns_path], ns_path)
                t_path = entry.get("t_ns")
                t_ns = array("q")
                if t_path is not None:
                    if t_path not in bundle.files:
                        raise ContentError(str(t_path), "missing (named in cells.json)")
                    t_ns = unpack_le(bundle.files[t_path], str(t_path))
                    if len(t_ns) != len(ns):
                        raise ContentError(str(t_path), f"{len(t_ns)} times for {len(ns)} samples")
                phase = str(entry["phase"])
                if phase not in SAMPLE_PHASES:
                    raise ContentError("cells.json", f"cell {cell_id}: unknown phase {phase!r}")
                entries.append((int(entry["run"]), phase, ns, t_ns))
            content.samples[cell_id] = entries
        except ValueError as exc:
            raise ContentError("cells.json", str(exc)) from None
        except (KeyError, TypeError) as exc:
            raise ContentError("cells.json", f"malformed cell entry ({type(exc).__name__}: {exc})") from None
    for key, value in raw_summaries.items():
        if not isinstance(value, dict) or not isinstance(value.get("summary"), dict):
            raise ContentError("summaries.json", f"entry {key!r} has no summary object")
        try:
            content.summaries[int(key)] = value
        except ValueError:
            raise ContentError("summaries.json", f"entry {key!r} is not a cell id") from None
    return content


_CELL_FIELDS: Final[dict[str, type | tuple[type, ...]]] = {
    "id": int,
    "node": str,
    "workload": str,
    "bucket": str,
    "engine": str,
    "config": dict,
    "key": str,
    "state": str,
    "attempts": int,
    "samples": list,
}
_GATE_FIELDS: Final[dict[str, type | tuple[type, ...]]] = {
    "gate": str,
    "verdict": str,
    "node": str,
    "workload": str,
    "bucket": str,
    "detail": str,
}
_THERMAL_FIELDS: Final[dict[str, type | tuple[type, ...]]] = {"node": str, "t_ns": int, "state": dict}
_PROBE_FIELDS: Final[dict[str, type | tuple[type, ...]]] = {
    "node": str,
    "phase": str,
    "taken_at": str,
    "facts": dict,
}
_RUN_IDENTITY: Final = ("name", "contract_hash", "started_at", "status")


def _check_entries(path: str, entries: list[Any], fields: Mapping[str, type | tuple[type, ...]]) -> None:
    """Every entry an object with `fields` of the right JSON types (bool is not an int here)."""
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ContentError(path, f"entry {index} is not an object")
        for name, kind in fields.items():
            value = entry.get(name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ContentError(path, f"entry {index}: {name!r} missing or not {_kind_name(kind)}")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", dict: "an object", list: "a list"}
    return names.get(kind, str(kind)) if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)


def cell_name(cell: Mapping[str, Any]) -> str:
    return f"{cell.get('node')} {cell.get('key')}"


def run_samples(entries: Iterable[tuple[int, str, array[int], array[int]]]) -> list[RunSamples]:
    by_run: dict[int, dict[str, tuple[array[int], array[int]]]] = {}
    for run, phase, ns, t_ns in entries:
        by_run.setdefault(run, {})[phase] = (ns, t_ns)
    out = []
    for run, phases in sorted(by_run.items()):
        empty: tuple[array[int], array[int]] = (array("q"), array("q"))
        m_ns, m_t = phases.get("measure", empty)
        s_ns, s_t = phases.get("sustained", empty)
        out.append(RunSamples(run, m_ns, m_t, s_ns, s_t))
    return out


def recomputed_summaries(
    content: Content, settings: Settings = DEFAULT_SETTINGS
) -> tuple[dict[int, dict[str, Any]], list[Problem]]:
    """cell id -> the summary recomputed from its samples (cells with an ok result only), with the
    run's measurement `settings` (p99 wanted, epsilon)."""
    fresh: dict[int, dict[str, Any]] = {}
    problems: list[Problem] = []
    for cell in content.cells:
        cell_id = int(cell["id"])
        stored = content.summaries.get(cell_id)
        if stored is None or cell.get("state") != "done":
            continue
        summary = stored["summary"]
        try:
            fresh[cell_id] = recompute(summary, run_samples(content.samples.get(cell_id, ())), settings)
        except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
            problems.append(Problem("summary", cell_name(cell), f"cannot recompute: {exc}"))
            continue
        for difference in differences(summary, fresh[cell_id]):
            problems.append(Problem("summary", cell_name(cell), difference))
    return fresh, problems


def _recheck(content: Content, report: VerifyReport) -> None:
    from fleet_tui.config.spec import SpecError, parse_spec

    try:
        spec = parse_spec(content.spec_toml, source="spec/spec.toml")
    except SpecError as exc:
        report.problems.append(Problem("unreadable", "spec/spec.toml", str(exc)))
        return
    settings = Settings(want_p99=spec.measure.p99, epsilon=spec.measure.epsilon)
    fresh, problems = recomputed_summaries(content, settings)
    report.cells_checked = len(fresh)
    report.problems += problems
    outcomes = []
    for cell in content.cells:
        cell_id = int(cell["id"])
        stored = content.summaries.get(cell_id)
        summary = fresh.get(cell_id, stored["summary"] if stored else None)
        outcomes.append(
            CellOutcome(
                cell_id=cell_id,
                node=str(cell["node"]),
                workload=str(cell["workload"]),
                bucket=str(cell["bucket"]),
                engine=str(cell["engine"]),
                config=dict(cell.get("config") or {}),
                key=str(cell["key"]),
                state=str(cell["state"]),
                reason=cell.get("reason"),
                summary=summary,
            )
        )
    recomputed = evaluate_gates(outcomes, spec.gates, spec.budgets()).verdicts
    stored_by: dict[tuple[str, str, str], dict[str, Any]] = {
        (str(g.get("gate")), str(g.get("node")), str(g.get("cell_key"))): g for g in content.gates
    }
    fresh_by = {(v.gate, v.node, str(v.cell_key)): v for v in recomputed}
    report.verdicts_checked = len(fresh_by)
    for key in sorted(
        set(stored_by) | set(fresh_by),
    ):
        gate, node, cell_key = key
        where = f"{node} {cell_key}"
        old, new = stored_by.get(key), fresh_by.get(key)
        if old is None:
            assert new is not None
            report.problems.append(Problem("gate", where, f"{gate}: recomputed {new.verdict}, not stored"))
            continue
        if new is None:
            report.problems.append(
                Problem("gate", where, f"{gate}: stored {old.get('verdict')}, not recomputed")
            )
            continue
        same_value = (old.get("value") is None and new.value is None) or (
            isinstance(old.get("value"), int | float)
            and new.value is not None
            and abs(float(old["value"]) - new.value) <= 1e-9 * max(1.0, abs(new.value))
        )
        if old.get("verdict") != new.verdict or not same_value:
            report.problems.append(
                Problem(
                    "gate",
                    where,
                    f"{gate}: stored {old.get('verdict')} ({old.get('value')}), "
                    f"recomputed {new.verdict} ({new.value}): {new.detail}",
                )
            )


# --- import -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    run_id: int
    created: bool
    """False when the store already had the run (nothing was changed)."""
    name: str
    cells: int
    samples: int


def import_bundle(path: str | os.PathLike[str], store: Store) -> ImportResult:
    """Merge a bundle's run into `store`, keeping the run's identity (name, contract hash,
    started_at); a run already there is left as it is. One transaction: all or nothing.

    Refuses (BundleTampered) a bundle that does not verify: an import never spreads tampered data.
    """
    report, content = verify_bundle(read_bundle(path))
    if not report.ok or content is None:
        raise BundleTampered(report)
    run = content.manifest.get("run") or {}
    name, contract, started = str(run["name"]), str(run["contract_hash"]), str(run["started_at"])
    conn = sqlite3.connect(store.path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = _insert(conn, content, name, contract, started)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StoreError(f"{store.path}: import failed: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(
            f"{report.source}: malformed content ({type(exc).__name__}: {exc}); nothing imported"
        ) from None
    finally:
        conn.close()
    return result


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _insert(
    conn: sqlite3.Connection, content: Content, name: str, contract: str, started: str
) -> ImportResult:
    existing = conn.execute(
        "SELECT id FROM runs WHERE name = ? AND contract_hash = ? AND started_at = ?",
        (name, contract, started),
    ).fetchone()
    samples_total = sum(len(ns) for entries in content.samples.values() for _, _, ns, _ in entries)
    if existing is not None:
        return ImportResult(int(existing[0]), False, name, len(content.cells), samples_total)
    run = content.manifest["run"]
    cursor = conn.execute(
        """INSERT INTO runs (name, spec_toml, spec_json, contract_hash, versions, status, started_at,
                             finished_at, exit_code)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            name,
            content.spec_toml,
            _dumps(content.spec),
            contract,
            _dumps(run.get("versions") or {}),
            str(run.get("status")),
            started,
            run.get("finished_at"),
            run.get("exit_code"),
        ),
    )
    run_id = int(cursor.lastrowid or 0)
    stamp = now_iso()
    for node in content.nodes:
        conn.execute(
            """INSERT INTO nodes (name, host, transport, tier, hourly_usd, purchase_usd, tags, updated_at,
                                  kwh_usd)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING""",
            (
                node["name"],
                node.get("host") or "",
                node.get("transport") or "ssh",
                node.get("tier"),
                node.get("hourly_usd"),
                node.get("purchase_usd"),
                _dumps(list(node.get("tags") or [])),
                node.get("updated_at") or stamp,
                node.get("kwh_usd"),
            ),
        )
    for artifact_id, entry in content.artifacts.items():
        if entry.get("manifest") is None:
            continue
        conn.execute(
            "INSERT INTO artifacts (id, workload, manifest, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            (artifact_id, str(entry.get("workload")), _dumps(entry["manifest"]), started),
        )
    for probe in content.facts:
        conn.execute(
            "INSERT INTO probes (run_id, node, phase, taken_at, facts) VALUES (?, ?, ?, ?, ?)",
            (run_id, probe["node"], probe["phase"], probe["taken_at"], _dumps(probe["facts"])),
        )
    ids: dict[int, int] = {}
    for cell in content.cells:
        cursor = conn.execute(
            """INSERT INTO cells (run_id, node, workload, bucket, engine, config, key, state, attempts,
                                  reason, started_at, finished_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                run_id,
                cell["node"],
                cell["workload"],
                cell["bucket"],
                cell["engine"],
                _dumps(cell.get("config") or {}),
                cell["key"],
                cell["state"],
                int(cell.get("attempts") or 0),
                cell.get("reason"),
                cell.get("started_at"),
                cell.get("finished_at"),
            ),
        )
        new_id = int(cursor.lastrowid or 0)
        ids[int(cell["id"])] = new_id
        for seq, (run_idx, phase, ns, t_ns) in enumerate(content.samples.get(int(cell["id"]), ())):
            conn.execute(
                """INSERT INTO samples (cell_id, attempt, run_idx, phase, batch_seq, count, ns, t_ns)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    new_id,
                    int(cell.get("attempts") or 0),
                    run_idx,
                    phase,
                    seq,
                    len(ns),
                    pack_le(ns),
                    pack_le(t_ns),
                ),
            )
    for old_id, entry in content.summaries.items():
        if old_id not in ids:
            continue
        status = {"done": "ok", "unsupported": "unsupported"}.get(str(entry.get("state")), "failed")
        finished = next((c.get("finished_at") for c in content.cells if int(c["id"]) == old_id), None)
        conn.execute(
            "INSERT INTO results (cell_id, status, summary, created_at) VALUES (?, ?, ?, ?)",
            (ids[old_id], status, _dumps(entry["summary"]), finished or started),
        )
        energy = entry["summary"].get("energy")
        if isinstance(energy, dict):
            conn.execute(
                f"INSERT INTO energy (cell_id, {', '.join(ENERGY_COLUMNS)}) "
                f"VALUES (?, {', '.join('?' for _ in ENERGY_COLUMNS)})",
                (ids[old_id], *energy_row(energy)),
            )
    for point in content.thermal:
        cell_ref = point.get("cell_id")
        conn.execute(
            "INSERT INTO thermal (run_id, node, cell_id, t_ns, state) VALUES (?, ?, ?, ?, ?)",
            (
                run_id,
                point["node"],
                ids.get(int(cell_ref)) if cell_ref is not None else None,
                int(point["t_ns"]),
                _dumps(point["state"]),
            ),
        )
    for gate in content.gates:
        cell_ref = gate.get("cell_id")
        conn.execute(
            """INSERT INTO gates (run_id, cell_id, cell_key, node, workload, bucket, gate, verdict, detail,
                                  value, threshold)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                run_id,
                ids.get(int(cell_ref)) if cell_ref is not None else None,
                gate.get("cell_key"),
                gate["node"],
                gate["workload"],
                gate["bucket"],
                gate["gate"],
                gate["verdict"],
                gate.get("detail") or "",
                gate.get("value"),
                gate.get("threshold"),
            ),
        )
    return ImportResult(run_id, True, name, len(content.cells), samples_total)
