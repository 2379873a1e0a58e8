"""convnet: a mobile-style stack on (1, 3, H, W) images, 10-class logits.

stem: conv3x3 stride 2 (batch norm folded into the conv) + relu; then depthwise-separable
blocks (depthwise 3x3 + relu, pointwise 1x1 + relu); global mean pool; linear classifier.
Padding is explicit (1 pixel for 3x3) so all three backends agree on odd-padding placement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from node_agent.workloads import Bucket, Ops
from node_agent.workloads.mlp import bucket_rng

STEM_CHANNELS = 16
BLOCKS: tuple[tuple[int, int, int], ...] = ((16, 32, 1), (32, 64, 2), (64, 128, 2), (128, 128, 1))
"""(in channels, out channels, depthwise stride) per depthwise-separable block."""
CLASSES = 10
BN_EPS = 1e-5


def _folded_conv(
    rng: np.random.Generator, out_ch: int, in_per_group: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """A conv weight with a random batch norm folded in: w * g / sqrt(var + eps), beta - mean * that."""
    fan_in = in_per_group * k * k
    w = rng.standard_normal((out_ch, in_per_group, k, k)) * np.sqrt(2.0 / fan_in)
    gamma = 1.0 + 0.1 * rng.standard_normal(out_ch)
    beta = 0.1 * rng.standard_normal(out_ch)
    mean = 0.1 * rng.standard_normal(out_ch)
    var = 1.0 + 0.1 * np.abs(rng.standard_normal(out_ch))
    scale = gamma / np.sqrt(var + BN_EPS)
    return (w * scale[:, None, None, None]).astype(np.float32), (beta - mean * scale).astype(np.float32)


def make_weights(seed: int) -> dict[str, np.ndarray]:
    """Seeded He-scaled conv weights with folded batch norms, and the classifier."""
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    weights["stem.weight"], weights["stem.bias"] = _folded_conv(rng, STEM_CHANNELS, 3, 3)
    for i, (cin, cout, _stride) in enumerate(BLOCKS):
        weights[f"block{i}.dw.weight"], weights[f"block{i}.dw.bias"] = _folded_conv(rng, cin, 1, 3)
        weights[f"block{i}.pw.weight"], weights[f"block{i}.pw.bias"] = _folded_conv(rng, cout, cin, 1)
    last = BLOCKS[-1][1]
    weights["head.weight"] = (rng.standard_normal((CLASSES, last)) / np.sqrt(last)).astype(np.float32)
    weights["head.bias"] = np.zeros(CLASSES, np.float32)
    return weights


def make_inputs(bucket: Bucket, seed: int, count: int) -> list[dict[str, np.ndarray]]:
    """`count` frozen evaluation images: standard normal (like normalised pixels)."""
    rng = bucket_rng(bucket, seed)
    return [{"x": rng.standard_normal(bucket.inputs["x"]).astype(np.float32)} for _ in range(count)]


def forward(ops: Ops, weights: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """The one definition of the network."""
    h = ops.relu(ops.conv2d(inputs["x"], weights["stem.weight"], weights["stem.bias"], stride=2, padding=1))
    for i, (cin, _cout, stride) in enumerate(BLOCKS):
        dw_w, dw_b = weights[f"block{i}.dw.weight"], weights[f"block{i}.dw.bias"]
        h = ops.relu(ops.conv2d(h, dw_w, dw_b, stride=stride, padding=1, groups=cin))
        h = ops.relu(ops.conv2d(h, weights[f"block{i}.pw.weight"], weights[f"block{i}.pw.bias"]))
    pooled = ops.mean(h, axis=(2, 3))  # (1, C)
    return ops.linear(pooled, weights["head.weight"], weights["head.bias"])
