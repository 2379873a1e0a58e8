"""decoder-step: one decode step of a small pre-norm transformer over a KV cache.

Inputs: x (1, 1, D), the new token's embedding, and kv_cache (LAYERS, 2, HEADS, T, HEAD_DIM)
with T = the context length of the bucket. Output: logits (1, 1, VOCAB) for the next token.

Design decision (Core ML, docs/PLATFORM.md, "Core ML conversion"): K and V of every layer are packed into the
ONE input kv_cache. Separate k_cache / v_cache inputs would be two EnumeratedShapes inputs,
which ct.convert refuses below macOS15 ("Expected a single enumerated shape input"). The
packed cache keeps the macOS14 target; x stays a fixed-shape input.

Each layer appends the new token's k and v to its cache (attention over T + 1 positions)
with matmul + softmax (no scaled_dot_product_attention op below the iOS18 opset). No
positional encoding: the step has no position input, and none is needed to time it.
The updated cache is not returned (a single output keeps the engines simple); the
concat that would produce it is still computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from node_agent.workloads import Bucket, Ops
from node_agent.workloads.mlp import bucket_rng

D = 256
HEADS = 4
HEAD_DIM = D // HEADS
LAYERS = 2
F = 1024
VOCAB = 1024
LN_EPS = 1e-5


def make_weights(seed: int) -> dict[str, np.ndarray]:
    """Seeded weights, 1/sqrt(fan_in) scaled; layer norms near identity."""
    rng = np.random.default_rng(seed)

    def dense(out: int, inp: int) -> np.ndarray:
        return np.asarray(rng.standard_normal((out, inp)) / np.sqrt(inp), dtype=np.float32)

    def small(n: int) -> np.ndarray:
        return (0.02 * rng.standard_normal(n)).astype(np.float32)

    weights: dict[str, np.ndarray] = {}
    for layer in range(LAYERS):
        p = f"layer{layer}."
        for name in ("ln1", "ln2"):
            weights[p + name + ".weight"] = (1.0 + 0.1 * rng.standard_normal(D)).astype(np.float32)
            weights[p + name + ".bias"] = small(D)
        for name in ("q", "k", "v", "o"):
            weights[p + name + ".weight"] = dense(D, D)
            weights[p + name + ".bias"] = small(D)
        weights[p + "fc1.weight"], weights[p + "fc1.bias"] = dense(F, D), small(F)
        weights[p + "fc2.weight"], weights[p + "fc2.bias"] = dense(D, F), small(D)
    weights["ln_f.weight"] = np.ones(D, np.float32)
    weights["ln_f.bias"] = np.zeros(D, np.float32)
    weights["lm_head.weight"] = dense(VOCAB, D)
    return weights


def make_inputs(bucket: Bucket, seed: int, count: int) -> list[dict[str, np.ndarray]]:
    """`count` frozen inputs: a standard normal token embedding and a standard normal cache."""
    rng = bucket_rng(bucket, seed)
    return [
        {
            "x": rng.standard_normal(bucket.inputs["x"]).astype(np.float32),
            "kv_cache": rng.standard_normal(bucket.inputs["kv_cache"]).astype(np.float32),
        }
        for _ in range(count)
    ]


def _heads(ops: Ops, t: Any) -> Any:
    """(1, 1, D) -> (HEADS, 1, HEAD_DIM)."""
    return ops.transpose(ops.reshape(t, [1, HEADS, HEAD_DIM]), [1, 0, 2])


def forward(ops: Ops, weights: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """The one definition of the network."""
    x = inputs["x"]
    kv_cache = inputs["kv_cache"]
    scale = HEAD_DIM**-0.5
    for layer in range(LAYERS):
        p = f"layer{layer}."
        w = {name: weights[p + name] for name in (n[len(p) :] for n in weights if n.startswith(p))}
        layer_cache = ops.take(kv_cache, layer, axis=0)  # (2, H, T, Dh)
        h = ops.layer_norm(x, w["ln1.weight"], w["ln1.bias"], LN_EPS)
        q = _heads(ops, ops.linear(h, w["q.weight"], w["q.bias"]))
        k_new = _heads(ops, ops.linear(h, w["k.weight"], w["k.bias"]))
        v_new = _heads(ops, ops.linear(h, w["v.weight"], w["v.bias"]))
        k = ops.concat([ops.take(layer_cache, 0, axis=0), k_new], axis=1)  # (H, T+1, Dh)
        v = ops.concat([ops.take(layer_cache, 1, axis=0), v_new], axis=1)
        scores = ops.mul(ops.matmul(q, k, transpose_b=True), scale)  # (H, 1, T+1)
        attended = ops.matmul(ops.softmax(scores, axis=-1), v)  # (H, 1, Dh)
        merged = ops.reshape(ops.transpose(attended, [1, 0, 2]), [1, 1, D])
        x = ops.add(x, ops.linear(merged, w["o.weight"], w["o.bias"]))
        h = ops.layer_norm(x, w["ln2.weight"], w["ln2.bias"], LN_EPS)
        h = ops.linear(
            ops.gelu(ops.linear(h, w["fc1.weight"], w["fc1.bias"])), w["fc2.weight"], w["fc2.bias"]
        )
        x = ops.add(x, h)
    x = ops.layer_norm(x, weights["ln_f.weight"], weights["ln_f.bias"], LN_EPS)
    return ops.linear(x, weights["lm_head.weight"])
