"""MLX backend of the workload op namespace (mlx imported when an MlxOps is created)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from node_agent.workloads.ops_numpy import resolve_padding


class MlxOps:
    """Op namespace on mx.array values in one float dtype (mx.float32 default, or mx.float16).

    Graphs are shape-agnostic (reshapes use -1), so the caller may wrap forward in
    ``mx.compile(..., shapeless=True)`` (docs/PLATFORM.md, "MLX").
    """

    def __init__(self, dtype: Any = None) -> None:
        import mlx.core as mx
        import mlx.nn as nn

        self.mx = mx
        self.nn = nn
        self.dtype = mx.float32 if dtype is None else dtype
        if self.dtype not in (mx.float32, mx.float16, mx.bfloat16):
            raise ValueError(f"MlxOps dtype must be mx.float32, mx.float16 or mx.bfloat16, not {dtype}")

    def const(self, array: Any) -> Any:
        mx = self.mx
        if isinstance(array, mx.array):
            if mx.issubdtype(array.dtype, mx.integer):
                return array.astype(mx.int32)
            return array.astype(self.dtype)
        arr = np.asarray(array)
        if np.issubdtype(arr.dtype, np.integer):
            return mx.array(arr.astype(np.int32))
        # mx.array(float64) silently becomes float32; cast explicitly (docs/PLATFORM.md, "MLX")
        return mx.array(arr.astype(np.float32)).astype(self.dtype)

    def linear(self, x: Any, w: Any, b: Any | None = None) -> Any:
        if b is None:
            return x @ w.T
        return self.mx.addmm(b, x, w.T)

    def matmul(self, a: Any, b: Any, transpose_b: bool = False) -> Any:
        return a @ (b.swapaxes(-1, -2) if transpose_b else b)

    def add(self, a: Any, b: Any) -> Any:
        return a + b  # Python scalars are weakly typed in MLX: the dtype of `a` is kept

    def mul(self, a: Any, b: Any) -> Any:
        return a * b

    def gelu(self, x: Any) -> Any:
        return self.nn.gelu_approx(x)  # tanh approximation, same formula as mb.gelu TANH_APPROXIMATION

    def gelu_erf(self, x: Any) -> Any:
        return self.nn.gelu(x)

    def relu(self, x: Any) -> Any:
        return self.mx.maximum(x, 0)

    def layer_norm(self, x: Any, gamma: Any, beta: Any, eps: float) -> Any:
        return self.mx.fast.layer_norm(x, gamma, beta, eps)

    def softmax(self, x: Any, axis: int) -> Any:
        return self.mx.softmax(x, axis=axis)

    def reshape(self, x: Any, shape: Sequence[int]) -> Any:
        return x.reshape(*shape)

    def transpose(self, x: Any, perm: Sequence[int]) -> Any:
        return x.transpose(*perm)

    def conv2d(
        self,
        x: Any,
        w: Any,
        b: Any | None = None,
        stride: int = 1,
        padding: int | str = 0,
        groups: int = 1,
    ) -> Any:
        # The namespace is NCHW with (O, I/groups, kh, kw) weights (Core ML's layout); MLX
        # convolves NHWC with (O, kh, kw, I/groups), so transpose in and out.
        pad = resolve_padding(padding, int(w.shape[2]))
        y = self.mx.conv2d(
            x.transpose(0, 2, 3, 1), w.transpose(0, 2, 3, 1), stride=stride, padding=pad, groups=groups
        )
        if b is not None:
            y = y + b
        return y.transpose(0, 3, 1, 2)

    def gather(self, table: Any, ids: Any) -> Any:
        return self.mx.take(table, ids, axis=0)

    def take(self, x: Any, index: int, axis: int) -> Any:
        return self.mx.take(x, index, axis=axis)

    def concat(self, xs: Sequence[Any], axis: int) -> Any:
        return self.mx.concatenate(list(xs), axis=axis)

    def mean(self, x: Any, axis: int | Sequence[int], keepdims: bool = False) -> Any:
        axes = axis if isinstance(axis, int) else list(axis)
        return self.mx.mean(x, axis=axes, keepdims=keepdims)

    def arange_like(self, x: Any, axis: int) -> Any:
        return self.mx.arange(x.shape[axis], dtype=self.mx.int32)

    def l2_normalize(self, x: Any, eps: float) -> Any:
        mx = self.mx
        return x * mx.rsqrt(mx.sum(x * x, axis=-1, keepdims=True) + eps)


def mlx_float_dtype(name: str) -> Any:
    """ "fp32" / "fp16" / "bf16" -> the mx dtype."""
    import mlx.core as mx

    table = {"fp32": mx.float32, "fp16": mx.float16, "bf16": mx.bfloat16}
    if name not in table:
        raise ValueError(f"unknown MLX precision {name!r}; expected one of {', '.join(table)}")
    return table[name]
