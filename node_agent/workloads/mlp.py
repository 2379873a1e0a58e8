"""mlp: x (B, 256) -> linear 1024 -> tanh GELU -> linear 256. Batch buckets b1 / b8 / b32."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from node_agent.workloads import Bucket, Ops

D = 256
F = 1024


def bucket_rng(bucket: Bucket, seed: int) -> np.random.Generator:
    """A generator seeded by (seed, bucket name): each bucket's inputs are independent."""
    return np.random.default_rng([seed, zlib.crc32(bucket.name.encode())])


def make_weights(seed: int) -> dict[str, np.ndarray]:
    """Seeded weights, scaled 1/sqrt(fan_in) so activations stay O(1)."""
    rng = np.random.default_rng(seed)
    return {
        "fc1.weight": (rng.standard_normal((F, D)) / np.sqrt(D)).astype(np.float32),
        "fc1.bias": (0.1 * rng.standard_normal(F)).astype(np.float32),
        "fc2.weight": (rng.standard_normal((D, F)) / np.sqrt(F)).astype(np.float32),
        "fc2.bias": (0.1 * rng.standard_normal(D)).astype(np.float32),
    }


def make_inputs(bucket: Bucket, seed: int, count: int) -> list[dict[str, np.ndarray]]:
    """`count` frozen evaluation inputs: standard normal x of the bucket's shape."""
    rng = bucket_rng(bucket, seed)
    return [{"x": rng.standard_normal(bucket.inputs["x"]).astype(np.float32)} for _ in range(count)]


def forward(ops: Ops, weights: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """The one definition of the network."""
    h = ops.linear(inputs["x"], weights["fc1.weight"], weights["fc1.bias"])
    h = ops.gelu(h)
    return ops.linear(h, weights["fc2.weight"], weights["fc2.bias"])
