"""Content-addressed workload artifacts: build (controller side) and verify (on nodes).

Layout of ``<out_root>/<artifact_id>/``::

    model-fp16.mlpackage  model-fp32.mlpackage   mlprogram, macOS14 target, EnumeratedShapes
    weights.npz                                  float32 weights (deterministic zip bytes)
    eval.npz                                     "<bucket>.<input>" stacked (eval_count, *shape),
                                                 "<bucket>.reference" numpy float64 outputs
    manifest.json                                recipe, hashes, versions, conversion times

The raw .mlpackage bytes differ between conversions (random UUIDs in Manifest.json,
protobuf map order, the conversion date), so the id is built from the recipe, the weights
and eval hashes and the *semantic* hash of each package (docs/PLATFORM.md, "Artifact hashes").
Every file's exact
sha256 is listed too; `verify_artifact` checks those on the node before use.

This module is stdlib only at import time (verify runs on nodes); numpy and coremltools
are imported inside the build functions.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import time
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, NoReturn

from node_agent.protocol import Emitter

MANIFEST_SCHEMA = 1
"""Bumped when a manifest field is removed or changes meaning."""
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.npz"
EVAL_NAME = "eval.npz"
TARGET = "macOS14"
DEFAULT_OUT = Path("~/.cache/fleet-tui/artifacts")
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class ArtifactError(Exception):
    """An artifact that is missing, unreadable or does not match its manifest."""


def package_name(precision: str) -> str:
    """The package directory for one precision, e.g. model-fp16.mlpackage."""
    return f"model-{precision}.mlpackage"


def file_sha256(path: Path) -> str:
    """sha256 of a file's exact bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _walk_files(root: Path) -> list[Path]:
    """Every regular file under root, in a stable (sorted, posix-path) order."""
    found = [p for p in root.rglob("*") if p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def mlpackage_semantic_hash(pkg: Path) -> str:
    """docs/PLATFORM.md, "Artifact hashes": deterministic spec bytes (conversion date removed) + Data/ blobs.

    Manifest.json (random UUIDs) is excluded and model.mlmodel is covered by the spec bytes.
    """
    from coremltools.models.utils import load_spec

    spec = load_spec(str(pkg))
    spec.description.metadata.userDefined.pop("com.github.apple.coremltools.conversion_date", None)
    digest = hashlib.sha256(b"spec\0" + spec.SerializeToString(deterministic=True))
    data_root = pkg / "Data"
    for path in _walk_files(data_root):
        rel = path.relative_to(pkg).as_posix()
        if rel.endswith("model.mlmodel"):
            continue
        digest.update(rel.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def write_npz_deterministic(path: Path, arrays: Mapping[str, Any]) -> None:
    """An .npz (readable by np.load) whose bytes depend only on the arrays: sorted members,
    stored (no compression), fixed timestamps. np.savez stamps the current time."""
    import numpy as np

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue())


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _versions() -> dict[str, str]:
    import importlib.metadata
    import platform

    import coremltools as ct
    import numpy as np

    return {
        "coremltools": ct.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "protobuf": importlib.metadata.version("protobuf"),
    }


def _reference_outputs(module: Any, weights: Mapping[str, Any], inputs: Sequence[Any]) -> Any:
    import numpy as np

    from node_agent.workloads import prepare
    from node_agent.workloads.ops_numpy import NumpyOps

    ops = NumpyOps(np.float64)
    prepared = prepare(ops, weights)
    return np.stack([np.asarray(module.forward(ops, prepared, prepare(ops, x))) for x in inputs])


def build_artifact(
    workload_name: str,
    out_root: Path,
    *,
    seed: int = 0,
    precisions: Sequence[str] = ("fp16", "fp32"),
    quantization: Mapping[str, Any] | None = None,
    eval_count: int = 8,
) -> Path:
    """Build (or reuse) the artifact for this recipe; returns ``<out_root>/<artifact_id>``.

    Raises ValueError for an unknown workload, precision or quantization policy.
    """
    import importlib

    import numpy as np

    from node_agent.workloads import get_workload
    from node_agent.workloads.ops_mil import PRECISIONS, convert_workload, quantization_policy

    workload = get_workload(workload_name)
    chosen = sorted(set(precisions))
    for precision in chosen:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if not chosen:
        raise ValueError("at least one precision is needed")
    if eval_count < 1:
        raise ValueError(f"eval_count must be >= 1, not {eval_count}")
    policy = quantization_policy(quantization)
    module = importlib.import_module(workload.module)

    out_root = Path(out_root).expanduser()
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        weights = module.make_weights(seed)
        write_npz_deterministic(tmp / WEIGHTS_NAME, weights)

        eval_arrays: dict[str, Any] = {}
        for bucket in workload.buckets:
            inputs = module.make_inputs(bucket, seed, eval_count)
            for input_name in bucket.inputs:
                eval_arrays[f"{bucket.name}.{input_name}"] = np.stack([x[input_name] for x in inputs])
            eval_arrays[f"{bucket.name}.reference"] = _reference_outputs(module, weights, inputs)
        write_npz_deterministic(tmp / EVAL_NAME, eval_arrays)

        semantic: dict[str, str] = {}
        conversion_seconds: dict[str, float] = {}
        packages: dict[str, Any] = {}
        flexible = workload.flexible_inputs() if len(workload.buckets) > 1 else {}
        for precision in chosen:
            started = time.perf_counter()
            # coremltools may print to stdout; the agent's stdout carries only JSON events
            with redirect_stdout(sys.stderr):
                model = convert_workload(workload, weights, precision, quantization)
                pkg = tmp / package_name(precision)
                model.save(str(pkg))
            conversion_seconds[precision] = round(time.perf_counter() - started, 3)
            semantic[precision] = mlpackage_semantic_hash(pkg)
            float_io = "float16" if precision == "fp16" else "float32"
            packages[precision] = {
                "path": package_name(precision),
                "compute_precision": "FLOAT16" if precision == "fp16" else "FLOAT32",
                "inputs": {
                    name: {
                        "dtype": float_io if dtype == "float32" else dtype,
                        "flexible_axes": list(flexible.get(name, ())),
                    }
                    for name, dtype in workload.input_dtypes.items()
                },
                "output": workload.output_name,
            }

        recipe = {
            "workload": workload.name,
            "seed": seed,
            "precisions": chosen,
            "quantization": policy,
            "target": TARGET,
            "buckets": [
                {
                    "name": b.name,
                    "inputs": {k: list(v) for k, v in b.inputs.items()},
                    "budget_ms": b.budget_ms,
                }
                for b in workload.buckets
            ],
            "input_dtypes": dict(workload.input_dtypes),
            "output_name": workload.output_name,
            "eval_count": eval_count,
        }
        weights_sha = file_sha256(tmp / WEIGHTS_NAME)
        eval_sha = file_sha256(tmp / EVAL_NAME)
        id_source = "\0".join([_canonical_json(recipe), weights_sha, eval_sha, _canonical_json(semantic)])
        artifact_id = hashlib.sha256(id_source.encode()).hexdigest()[:16]

        manifest = {
            "schema": MANIFEST_SCHEMA,
            "artifact_id": artifact_id,
            "workload": workload.name,
            "recipe": recipe,
            "packages": packages,
            "files": {p.relative_to(tmp).as_posix(): file_sha256(p) for p in _walk_files(tmp)},
            "semantic_hash": semantic,
            "weights_sha256": weights_sha,
            "eval_sha256": eval_sha,
            "eval_layout": {
                "file": EVAL_NAME,
                "inputs": "<bucket>.<input>: (eval_count, *shape)",
                "reference": "<bucket>.reference: numpy float64 outputs, (eval_count, *output_shape)",
            },
            "versions": _versions(),
            "conversion_seconds": conversion_seconds,
            "tolerances": workload.tolerances,
            "output_kind": workload.output_kind,
            "tokens_per_call": workload.tokens_per_call,
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

        final = out_root / artifact_id
        if final.exists():
            try:
                verify_artifact(final)
                return final  # same recipe, same content: reuse what is there
            except ArtifactError:
                shutil.rmtree(final)  # a damaged copy: replace it with this build
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            # another build of the same recipe won the race; its content is identical
        return final
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_manifest(path: Path) -> dict[str, Any]:
    """The artifact's manifest.json; ArtifactError naming the file when absent or malformed."""
    manifest_path = Path(path) / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{manifest_path}: missing; not an artifact directory") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{manifest_path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{manifest_path}: no 'files' table")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise ArtifactError(f"{manifest_path}: schema {manifest.get('schema')!r}, expected {MANIFEST_SCHEMA}")
    return manifest


def verify_artifact(path: Path) -> dict[str, Any]:
    """Recompute the sha256 of every file the manifest lists; return the manifest.

    Raises ArtifactError naming the first missing or mismatching file (sorted order).
    """
    root = Path(path)
    manifest = read_manifest(root)
    files: dict[str, Any] = manifest["files"]
    for rel in sorted(files):
        target = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ArtifactError(f"{root / MANIFEST_NAME}: file entry {rel!r} points outside the artifact")
        if not target.is_file():
            raise ArtifactError(f"{target}: missing (listed in the manifest)")
        actual = file_sha256(target)
        if actual != files[rel]:
            raise ArtifactError(
                f"{target}: sha256 {actual[:16]}... does not match the manifest's {str(files[rel])[:16]}..."
            )
    return manifest


def load_weights(path: Path) -> dict[str, Any]:
    """The artifact's float32 weights (name -> np.ndarray)."""
    import numpy as np

    with np.load(Path(path) / WEIGHTS_NAME, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def load_eval_set(path: Path, bucket: str) -> tuple[list[dict[str, Any]], Any]:
    """The frozen eval inputs of one bucket (list of input dicts) and their float64 references."""
    import numpy as np

    manifest = read_manifest(Path(path))
    buckets = {b["name"]: b for b in manifest["recipe"]["buckets"]}
    if bucket not in buckets:
        raise KeyError(
            f"artifact {manifest['artifact_id']} has no bucket {bucket!r}; known: {', '.join(buckets)}"
        )
    with np.load(Path(path) / EVAL_NAME, allow_pickle=False) as data:
        stacked = {name: data[f"{bucket}.{name}"] for name in buckets[bucket]["inputs"]}
        reference = data[f"{bucket}.reference"]
    count = len(reference)
    return [{name: arr[i] for name, arr in stacked.items()} for i in range(count)], reference


class _ArgumentError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print usage and sys.exit
        raise _ArgumentError(message)


def _parse_build_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(prog="node_agent build", add_help=False)
    parser.add_argument("workload")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="fp16,fp32")
    parser.add_argument("--quantize", choices=["none", "int8"], default="none")
    parser.add_argument("--eval-count", type=int, default=8)
    return parser.parse_args(list(argv))


def _split_csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_main(out: Emitter, argv: Sequence[str]) -> int:
    """`python -m node_agent build <workload> --out DIR [--seed N] [--precision fp16,fp32]
    [--quantize int8] [--eval-count N]`; emits one `facts` event {"artifact": {...}}."""
    from node_agent.workloads import workload_names

    try:
        args = _parse_build_args(argv)
    except _ArgumentError as exc:
        out.error("bad_arguments", f"build: {exc}")
        return 2
    if args.workload not in workload_names():
        out.error(
            "unknown_workload",
            f"unknown workload {args.workload!r}; known workloads: {', '.join(workload_names())}",
        )
        return 2
    quantization = {"method": "linear", "dtype": "int8"} if args.quantize == "int8" else None
    out_root = Path(args.out).expanduser()
    existing = _existing_ids(out_root)
    try:
        path = build_artifact(
            args.workload,
            out_root,
            seed=args.seed,
            precisions=_split_csv(args.precision),
            quantization=quantization,
            eval_count=args.eval_count,
        )
    except ValueError as exc:
        out.error("bad_arguments", f"build: {exc}")
        return 2
    manifest = read_manifest(path)
    out.emit(
        "facts",
        facts={
            "artifact": {
                "path": str(path),
                "artifact_id": manifest["artifact_id"],
                "reused": manifest["artifact_id"] in existing,
                "manifest": manifest,
            }
        },
    )
    return 0


def _existing_ids(out_root: Path) -> set[str]:
    if not out_root.is_dir():
        return set()
    return {p.name for p in out_root.iterdir() if p.is_dir() and not p.name.startswith(".")}
