"""numpy backend of the workload op namespace: the float64 referee and a float32 CPU baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[Any]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_exact_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x: Array) -> Array:
    """erf in the dtype of x. float64 uses libm's math.erf (exact, slow); float32 is vectorised:
    Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7) and, near 0 where that formula cancels, the
    Maclaurin series to x**13, both evaluated in float64 and rounded to float32."""
    if x.dtype == np.float64:
        return np.asarray(_exact_erf(x), dtype=np.float64)
    xd = x.astype(np.float64)
    ax = np.abs(xd)
    t = 1.0 / (1.0 + 0.3275911 * ax)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    tail = np.copysign(1.0 - poly * np.exp(-xd * xd), xd)
    z = xd * xd
    series = (
        (2.0 / math.sqrt(math.pi))
        * xd
        * (1.0 + z * (-1 / 3 + z * (1 / 10 + z * (-1 / 42 + z * (1 / 216 + z * (-1 / 1320 + z / 9360))))))
    )
    return np.where(ax < 0.5, series, tail).astype(x.dtype)


def resolve_padding(padding: int | str, kernel: int) -> int:
    """Symmetric pixel padding: an int as is, "valid" = 0, "same" = kernel // 2 (odd kernels)."""
    if isinstance(padding, int):
        return padding
    if padding == "valid":
        return 0
    if padding == "same":
        return kernel // 2
    raise ValueError(f"padding must be an int, 'same' or 'valid', not {padding!r}")


class NumpyOps:
    """Op namespace on numpy arrays in one float dtype (np.float64 for the reference)."""

    def __init__(self, dtype: Any = np.float64) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"NumpyOps dtype must be float64 or float32, not {self.dtype}")

    def const(self, array: Any) -> Array:
        arr = np.asarray(array)
        if np.issubdtype(arr.dtype, np.integer):
            return arr.astype(np.int32)
        return arr.astype(self.dtype)

    def _scalar(self, value: Any) -> Any:
        return self.dtype.type(value) if isinstance(value, (int, float)) else value

    def linear(self, x: Array, w: Array, b: Array | None = None) -> Array:
        y = x @ w.T
        return y if b is None else y + b

    def matmul(self, a: Array, b: Array, transpose_b: bool = False) -> Array:
        return a @ (np.swapaxes(b, -1, -2) if transpose_b else b)

    def add(self, a: Array, b: Any) -> Array:
        return np.asarray(np.add(a, self._scalar(b)))

    def mul(self, a: Array, b: Any) -> Array:
        return np.asarray(np.multiply(a, self._scalar(b)))

    def gelu(self, x: Array) -> Array:
        c = self.dtype.type(_SQRT_2_OVER_PI)
        return np.asarray(0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x * x * x))), dtype=self.dtype)

    def gelu_erf(self, x: Array) -> Array:
        return np.asarray(0.5 * x * (1.0 + erf(x / self.dtype.type(math.sqrt(2.0)))), dtype=self.dtype)

    def relu(self, x: Array) -> Array:
        return np.asarray(np.maximum(x, self.dtype.type(0)))

    def layer_norm(self, x: Array, gamma: Array, beta: Array, eps: float) -> Array:
        mean = x.mean(axis=-1, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=-1, keepdims=True)
        return np.asarray(centered / np.sqrt(var + eps) * gamma + beta, dtype=self.dtype)

    def softmax(self, x: Array, axis: int) -> Array:
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return np.asarray(e / e.sum(axis=axis, keepdims=True), dtype=self.dtype)

    def reshape(self, x: Array, shape: Sequence[int]) -> Array:
        return x.reshape(tuple(shape))

    def transpose(self, x: Array, perm: Sequence[int]) -> Array:
        return np.transpose(x, tuple(perm))

    def conv2d(
        self,
        x: Array,
        w: Array,
        b: Array | None = None,
        stride: int = 1,
        padding: int | str = 0,
        groups: int = 1,
    ) -> Array:
        out_ch, in_per_group, kh, kw = w.shape
        pad = resolve_padding(padding, kh)
        n, c = x.shape[:2]
        if c != in_per_group * groups:
            raise ValueError(f"conv2d: {c} input channels, weight expects {in_per_group} x {groups} groups")
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        # windows: (N, C, Ho, Wo, kh, kw), strided view, no copy until the einsum
        windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[
            :, :, ::stride, ::stride
        ]
        ho, wo = windows.shape[2:4]
        windows = windows.reshape(n, groups, in_per_group, ho, wo, kh, kw)
        wg = w.reshape(groups, out_ch // groups, in_per_group, kh, kw)
        y = np.einsum("ngchwij,gocij->ngohw", windows, wg, optimize=True).reshape(n, out_ch, ho, wo)
        if b is not None:
            y = y + b.reshape(1, -1, 1, 1)
        return np.asarray(y, dtype=self.dtype)

    def gather(self, table: Array, ids: Array) -> Array:
        return np.take(table, ids, axis=0)

    def take(self, x: Array, index: int, axis: int) -> Array:
        return np.asarray(np.take(x, index, axis=axis))

    def concat(self, xs: Sequence[Array], axis: int) -> Array:
        return np.concatenate(list(xs), axis=axis)

    def mean(self, x: Array, axis: int | Sequence[int], keepdims: bool = False) -> Array:
        axes = axis if isinstance(axis, int) else tuple(axis)
        return np.asarray(x.mean(axis=axes, keepdims=keepdims), dtype=self.dtype)

    def arange_like(self, x: Array, axis: int) -> Array:
        return np.arange(x.shape[axis], dtype=np.int32)

    def l2_normalize(self, x: Array, eps: float) -> Array:
        norm = np.sqrt((x * x).sum(axis=-1, keepdims=True) + eps)
        return np.asarray(x / norm, dtype=self.dtype)
