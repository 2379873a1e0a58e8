"""Workload artifacts on the controller: build once (cached), upload once per node.

Building runs ``python -m node_agent build`` as a SUBPROCESS: the controller process never
imports coremltools, mlx or the workloads. Results are cached content-addressed under
``$FLEET_TUI_CACHE/artifacts`` (default ``~/.cache/fleet-tui/artifacts``); a small recipe index
(recipe + agent sources + library versions -> artifact id) lets a later sweep reuse a build
without converting again, after re-checking every file's hash.

Upload: the artifact directory is packed into a deterministic tar (sorted members, zero
mtimes/owners, fixed modes), put on the node with `Transport.put_file`, and extracted there by
the node's own python (``tarfile`` with ``filter="data"``) into
``$HOME/.fleet-agent/artifacts/<artifact_id>/`` via a temporary directory and a rename. A node
that already has the directory is skipped; the agent verifies every file's hash before use, so
a damaged copy is caught there (and replaced when the scheduler retries with ``force``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shlex
import sys
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fleet_tui.fleet.transport.base import NodeError, NodeErrorKind, Transport, clip_tail
from fleet_tui.paths import artifacts_root
from node_agent.engines import precision_of
from node_agent.protocol import ProtocolError, decode_event

if TYPE_CHECKING:
    from fleet_tui.config.spec import EngineConfig

REMOTE_ARTIFACTS_DIR: Final = ".fleet-agent/artifacts"
"""Under the node's $HOME."""
BUILD_SEED: Final = 0
BUILD_EVAL_COUNT: Final = 8
DEFAULT_PRECISIONS: Final = ("fp16",)
"""Packages built when the spec has no Core ML config (an artifact always carries one)."""
REMOTE_TIMEOUT_S: Final = 300.0
DEFAULT_BUILD_ESTIMATE_S: Final = 30.0
"""A build's estimate when this cache has never built the workload: the slowest here (minilm-l6,
numpy reference + Core ML fp16 conversion of a 90 MB encoder) took about that on an idle 2-core
Linux box; mlp takes a few seconds. Once a workload was built, its recorded time is used."""


class ArtifactBuildError(Exception):
    """A local artifact build failed; the message names the workload and the builder's error."""


@dataclass(frozen=True)
class Artifact:
    workload: str
    artifact_id: str
    path: Path
    manifest: dict[str, Any]
    reused: bool = False
    """True when the build was found in the cache (no conversion ran)."""
    build_s: float | None = None
    """Wall seconds of this build (None when reused)."""


def _lib_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def recipe_key(workload: str, precisions: Iterable[str]) -> str:
    """Names a build: the recipe, the agent's sources (workload code) and the converter's versions."""
    from fleet_tui.fleet.deploy import agent_zipapp_bytes

    recipe = {
        "workload": workload,
        "precisions": sorted(set(precisions)),
        "seed": BUILD_SEED,
        "eval_count": BUILD_EVAL_COUNT,
        "agent_sources": hashlib.sha256(agent_zipapp_bytes()).hexdigest(),
        "libs": {name: _lib_version(name) for name in ("coremltools", "numpy", "protobuf")},
        "python": sys.version.split()[0],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:32]


def _cached(root: Path, key: str) -> Artifact | None:
    """The indexed build for `key` if it is still intact (every hash re-checked)."""
    from node_agent.artifacts import ArtifactError, verify_artifact

    index = root / "index" / f"{key}.json"
    try:
        entry = json.loads(index.read_text())
        path = root / str(entry["artifact_id"])
        manifest = verify_artifact(path)
    except (OSError, ValueError, KeyError, TypeError, ArtifactError):
        return None
    return Artifact(str(manifest["workload"]), str(manifest["artifact_id"]), path, manifest, reused=True)


async def build_artifact(workload: str, precisions: Iterable[str], cache: Path | None = None) -> Artifact:
    """Build (or reuse from the cache) one workload's artifact. Raises ArtifactBuildError."""
    root = artifacts_root(cache)
    chosen = sorted(set(precisions)) or list(DEFAULT_PRECISIONS)
    key = recipe_key(workload, chosen)
    hit = await asyncio.to_thread(_cached, root, key)
    if hit is not None:
        return hit
    root.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "node_agent",
        "build",
        workload,
        "--out",
        str(root),
        "--precision",
        ",".join(chosen),
        "--seed",
        str(BUILD_SEED),
        "--eval-count",
        str(BUILD_EVAL_COUNT),
    ]
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=64 * 1024 * 1024,
    )
    try:
        out, err = await proc.communicate()
    except BaseException:
        # Cancelled (Ctrl-C): never leave a converter running behind us.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    info: dict[str, Any] | None = None
    errors: list[str] = []
    for line in out.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        try:
            event = decode_event(line)
        except ProtocolError as exc:
            errors.append(str(exc))
            continue
        if event["type"] == "facts" and isinstance(event.get("facts"), dict):
            candidate = event["facts"].get("artifact")
            info = candidate if isinstance(candidate, dict) else info
        elif event["type"] == "error":
            errors.append(f"{event.get('code')}: {event.get('message')}")
    if proc.returncode != 0 or info is None:
        detail = "; ".join(errors) or clip_tail(err.decode("utf-8", "replace")) or "no output"
        raise ArtifactBuildError(f"cannot build the {workload!r} artifact (exit {proc.returncode}): {detail}")
    artifact_id = str(info["artifact_id"])
    index = root / "index"
    index.mkdir(exist_ok=True)
    temp = index / f".{key}.{os.getpid()}.tmp"
    build_s = round(time.perf_counter() - started, 3)
    # build_s is kept so the next dry-run can estimate a rebuild of this workload (a new version).
    temp.write_text(json.dumps({"artifact_id": artifact_id, "workload": workload, "build_s": build_s}))
    os.replace(temp, index / f"{key}.json")
    return Artifact(workload, artifact_id, Path(str(info["path"])), dict(info["manifest"]), build_s=build_s)


def build_estimate_s(workload: str, precisions: Iterable[str], cache: Path | None = None) -> float:
    """Seconds `build_artifact` is expected to take: 0 when cached, else this workload's most
    recent recorded build time in the cache, else DEFAULT_BUILD_ESTIMATE_S."""
    root = artifacts_root(cache)
    key = recipe_key(workload, sorted(set(precisions)) or list(DEFAULT_PRECISIONS))
    if _cached(root, key) is not None:
        return 0.0
    recorded: list[tuple[float, float]] = []  # (mtime, build_s)
    for entry in (root / "index").glob("*.json") if (root / "index").is_dir() else ():
        try:
            data = json.loads(entry.read_text())
            if data.get("workload") == workload and isinstance(data.get("build_s"), int | float):
                recorded.append((entry.stat().st_mtime, float(data["build_s"])))
        except (OSError, ValueError, AttributeError):
            continue
    return max(recorded)[1] if recorded else DEFAULT_BUILD_ESTIMATE_S


async def build_artifacts(
    workloads: Iterable[str], precisions: Iterable[str], cache: Path | None = None
) -> dict[str, Artifact]:
    """Every workload's artifact, built one after another (conversions are CPU-heavy)."""
    chosen = list(precisions)
    return {w: await build_artifact(w, chosen, cache) for w in dict.fromkeys(workloads)}


# --- the tar and the upload ----------------------------------------------------------------------


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def artifact_tar(artifact: Artifact, cache: Path | None = None) -> Path:
    """A deterministic tar of the artifact (members ``<artifact_id>/...``), made once and cached."""
    tars = artifacts_root(cache) / "tars"
    tars.mkdir(parents=True, exist_ok=True)
    target = tars / f"{artifact.artifact_id}.tar"
    if target.is_file():
        return target
    temp = tars / f".{artifact.artifact_id}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with tarfile.open(temp, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_normalise(tar.gettarinfo(str(artifact.path), artifact.artifact_id)))
            paths = sorted(artifact.path.rglob("*"), key=lambda p: p.relative_to(artifact.path).as_posix())
            for path in paths:
                if not (path.is_dir() or path.is_file()) or path.is_symlink():
                    continue  # an artifact holds plain files and directories only
                name = f"{artifact.artifact_id}/{path.relative_to(artifact.path).as_posix()}"
                info = _normalise(tar.gettarinfo(str(path), name))
                if info.isdir():
                    tar.addfile(info)
                else:
                    with open(path, "rb") as fh:
                        tar.addfile(info, fh)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


# Runs on the node with its python: "present" when the artifact directory has its manifest.
_CHECK_SNIPPET: Final = """\
import os, sys
root, artifact_id = sys.argv[1], sys.argv[2]
os.makedirs(root, exist_ok=True)
print("present" if os.path.isfile(os.path.join(root, artifact_id, "manifest.json")) else "absent")
"""

# Runs on the node: extract the uploaded tar into a temp dir, then rename into place.
_EXTRACT_SNIPPET: Final = """\
import os, shutil, sys, tarfile, tempfile
tar_path, root, artifact_id, force = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "force"
final = os.path.join(root, artifact_id)
try:
    if os.path.isfile(os.path.join(final, "manifest.json")) and not force:
        print("present")
        sys.exit(0)
    tmp = tempfile.mkdtemp(prefix=".extract-", dir=root)
    try:
        with tarfile.open(tar_path) as tar:
            members = tar.getmembers()
            for m in members:
                parts = m.name.split("/")
                unsafe = parts[0] != artifact_id or ".." in parts or m.name.startswith("/")
                if unsafe or not (m.isfile() or m.isdir()):
                    print("bad member " + repr(m.name))
                    sys.exit(3)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.rename(os.path.join(tmp, artifact_id), final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("extracted")
finally:
    try:
        os.unlink(tar_path)
    except OSError:
        pass
"""


@dataclass(frozen=True)
class UploadResult:
    node: str
    artifact_id: str
    remote_path: str
    status: str
    """"present" (nothing sent) or "uploaded"."""
    bytes: int


async def remote_artifacts_dir(transport: Transport) -> str:
    return f"{await transport.home()}/{REMOTE_ARTIFACTS_DIR}"


async def _remote_python(transport: Transport, snippet: str, *args: str) -> str:
    result = await transport.run([transport.node.python, "-c", snippet, *args], timeout=REMOTE_TIMEOUT_S)
    answer = result.stdout.strip()
    if result.exit_status != 0:
        raise NodeError(
            NodeErrorKind.AGENT_ERROR,
            transport.node.name,
            f"artifact command with {shlex.quote(transport.node.python)} failed "
            f"(exit {result.exit_status}): {clip_tail(answer + ' ' + result.stderr, 300)}",
        )
    return answer


async def upload_artifact(
    transport: Transport, artifact: Artifact, *, force: bool = False, cache: Path | None = None
) -> UploadResult:
    """Make sure the node has the artifact under ~/.fleet-agent/artifacts/<id>/ (upload if absent).

    `force` replaces a copy already there (after the agent found it damaged).
    """
    node = transport.node.name
    root = await remote_artifacts_dir(transport)
    remote_path = f"{root}/{artifact.artifact_id}"
    if not force:
        state = await _remote_python(transport, _CHECK_SNIPPET, root, artifact.artifact_id)
        if state == "present":
            return UploadResult(node, artifact.artifact_id, remote_path, "present", 0)
    else:
        # The check snippet also creates the root directory the tar is put into.
        await _remote_python(transport, _CHECK_SNIPPET, root, artifact.artifact_id)
    tar_path = await asyncio.to_thread(artifact_tar, artifact, cache)
    remote_tar = f"{root}/.upload-{artifact.artifact_id}-{secrets.token_hex(4)}.tar"
    await transport.put_file(tar_path, remote_tar)
    answer = await _remote_python(
        transport, _EXTRACT_SNIPPET, remote_tar, root, artifact.artifact_id, "force" if force else "keep"
    )
    if answer not in ("extracted", "present"):
        raise NodeError(NodeErrorKind.AGENT_ERROR, node, f"artifact extraction said {answer!r}")
    sent = tar_path.stat().st_size
    return UploadResult(node, artifact.artifact_id, remote_path, "uploaded", sent)


def coreml_precisions(engines: Iterable[EngineConfig]) -> list[str]:
    """Precisions the spec's Core ML configs need (the packages worth converting)."""
    found = {precision_of(e.engine, e.config) for e in engines if e.engine == "coreml"}
    return sorted(found) or list(DEFAULT_PRECISIONS)
