"""The numeric gate: an engine's outputs on the frozen eval set vs the numpy float64 reference.

Metrics (over every eval example of the bucket, flattened):

* ``max_abs``: max |out - ref|.
* ``max_rel``: max |out - ref| / max |ref| (the workload tolerances' definition: a scale-free
  absolute error, see node_agent.workloads).
* ``max_rel_elementwise``: max |out - ref| / max(|ref|, floor), with the denominator floored at
  ``REL_FLOOR_FRACTION * max |ref|`` so values near zero do not blow the ratio up. Reported,
  not gated (tolerances are not defined for it).
* ``cosine``: cosine similarity of the flattened outputs (the minimum over examples too).
* for logits: ``top1_agreement`` (share of rows whose argmax matches) and ``topk_agreement``
  (mean overlap of the top-k sets, k = min(5, classes)).

The gate judges max_abs, max_rel and cosine against ``workload.tolerances[precision]`` and, for
logits, requires top-1 agreement of at least `MIN_TOP1_AGREEMENT`.

Core ML vs MLX is computed by the controller from two cell results: each result carries a
small digest of the raw outputs (`output_digest`: shape, sha256 of the float32 bytes, a few
statistics and, when there are at most `MAX_EMBEDDED_VALUES` values, the float32 values
themselves, zlib-compressed and base64-encoded).

numpy is imported lazily: this module is part of the stdlib-only agent core.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any

REL_FLOOR_FRACTION = 1e-3
"""The elementwise relative error's denominator is at least this fraction of max |ref|."""
MIN_TOP1_AGREEMENT = 0.99
TOP_K = 5
MAX_EMBEDDED_VALUES = 65_536


def compare(
    outputs: Any,
    reference: Any,
    tolerances: dict[str, float],
    *,
    output_kind: str = "tensor",
    precision: str = "fp32",
) -> dict[str, Any]:
    """Metrics of `outputs` against `reference` (same shape; leading axis = examples) and the verdict."""
    import numpy as np

    out = np.asarray(outputs, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if out.shape != ref.shape:
        return {
            "ok": False,
            "precision": precision,
            "failures": [f"output shape {list(out.shape)} != reference shape {list(ref.shape)}"],
        }
    if not np.all(np.isfinite(out)):
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        return {"ok": False, "precision": precision, "failures": [f"{bad} non-finite output values"]}
    diff = np.abs(out - ref)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    floor = max(scale * REL_FLOOR_FRACTION, np.finfo(np.float64).tiny)
    result: dict[str, Any] = {
        "precision": precision,
        "n_examples": int(out.shape[0]) if out.ndim else 1,
        "n_values": int(out.size),
        "max_abs": max_abs,
        "max_rel": max_abs / scale if scale > 0 else max_abs,
        "max_rel_elementwise": float((diff / np.maximum(np.abs(ref), floor)).max()) if diff.size else 0.0,
        "rel_floor": floor,
        "mean_abs": float(diff.mean()) if diff.size else 0.0,
        "cosine": _cosine(out.ravel(), ref.ravel()),
        "cosine_min_example": min(
            (_cosine(o.ravel(), r.ravel()) for o, r in zip(out, ref, strict=True)), default=1.0
        )
        if out.ndim > 1
        else None,
        "tolerances": dict(tolerances),
    }
    failures = []
    if max_abs > tolerances["max_abs"]:
        failures.append(f"max_abs {max_abs:.3g} > {tolerances['max_abs']:.3g}")
    if result["max_rel"] > tolerances["max_rel"]:
        failures.append(f"max_rel {result['max_rel']:.3g} > {tolerances['max_rel']:.3g}")
    if result["cosine"] < tolerances["min_cosine"]:
        failures.append(f"cosine {result['cosine']:.7f} < {tolerances['min_cosine']}")
    if output_kind == "logits" and out.shape[-1] > 1:
        rows_out = out.reshape(-1, out.shape[-1])
        rows_ref = ref.reshape(-1, ref.shape[-1])
        k = min(TOP_K, rows_out.shape[1])
        top1 = float(np.mean(rows_out.argmax(axis=1) == rows_ref.argmax(axis=1)))
        top_out = np.argsort(-rows_out, axis=1)[:, :k]
        top_ref = np.argsort(-rows_ref, axis=1)[:, :k]
        overlap = [len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(top_out, top_ref, strict=True)]
        result["top1_agreement"] = top1
        result["topk_agreement"] = float(np.mean(overlap))
        result["top_k"] = k
        if top1 < MIN_TOP1_AGREEMENT:
            failures.append(f"top-1 agreement {top1:.3f} < {MIN_TOP1_AGREEMENT}")
    result["failures"] = failures
    result["ok"] = not failures
    return result


def _cosine(a: Any, b: Any) -> float:
    import numpy as np

    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denom == 0:
        return 1.0 if not np.any(a - b) else 0.0
    return float(np.dot(a, b) / denom)


def output_digest(outputs: Any) -> dict[str, Any]:
    """A small, exact handle on raw outputs for cross-engine comparison on the controller."""
    import numpy as np

    arr = np.ascontiguousarray(np.asarray(outputs, dtype="<f4"))
    raw = arr.tobytes()
    digest: dict[str, Any] = {
        "shape": list(arr.shape),
        "dtype": "float32",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "mean": float(arr.mean()) if arr.size else 0.0,
        "std": float(arr.std()) if arr.size else 0.0,
        "min": float(arr.min()) if arr.size else 0.0,
        "max": float(arr.max()) if arr.size else 0.0,
    }
    digest["values_zlib_b64"] = (
        base64.b64encode(zlib.compress(raw, 6)).decode("ascii") if arr.size <= MAX_EMBEDDED_VALUES else None
    )
    return digest


def decode_digest_values(digest: dict[str, Any]) -> Any:
    """The float32 array embedded by `output_digest` (None when too large to embed)."""
    import numpy as np

    blob = digest.get("values_zlib_b64")
    if blob is None:
        return None
    return np.frombuffer(zlib.decompress(base64.b64decode(blob)), dtype="<f4").reshape(digest["shape"])
