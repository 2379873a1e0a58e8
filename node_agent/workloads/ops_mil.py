"""coremltools MIL-builder backend of the workload op namespace, and the Core ML conversion.

Follows docs/PLATFORM.md, "Core ML conversion" exactly: opset macOS14 (no
scaled_dot_product_attention: attention is
matmul + softmax in the workloads), the flexible axis is a `get_new_symbol()` symbol with the
bucket shapes passed as `ct.EnumeratedShapes` to `ct.convert` (a fixed TensorSpec would
silently drop the enumeration), fp16 I/O declared through `mb.TensorSpec(dtype=types.fp16)`
(ct.TensorType(dtype=...) is ignored for MIL programs), and at most ONE enumerated input
(two need macOS15).

fp16 packages are built as all-fp16 programs: fp16 inputs/outputs and fp16 weight consts,
converted with compute_precision FLOAT16. fp32 packages are all fp32 with FLOAT32.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from node_agent.workloads import Bucket, Workload
from node_agent.workloads.ops_numpy import resolve_padding

PRECISIONS = ("fp16", "fp32")
_NP_DTYPE = {"fp16": np.float16, "fp32": np.float32}


def _mb() -> Any:
    from coremltools.converters.mil import Builder as mb

    return mb


class MilOps:
    """Op namespace emitting `mb.*` ops; use inside a MIL `Function` (see `build_program`).

    Weights pass through `const` as numpy arrays in the package precision; the builder turns
    them into const ops (weight.bin blobs) when an op consumes them.
    """

    def __init__(self, precision: str = "fp32") -> None:
        if precision not in _NP_DTYPE:
            raise ValueError(f"MilOps precision must be one of {PRECISIONS}, not {precision!r}")
        self.precision = precision
        self.np_dtype = _NP_DTYPE[precision]
        self.mb = _mb()

    def const(self, array: Any) -> Any:
        arr = np.asarray(array)
        if np.issubdtype(arr.dtype, np.integer):
            return arr.astype(np.int32)
        return arr.astype(self.np_dtype)

    def _value(self, value: Any) -> Any:
        """Python scalars become 0-d arrays of the program dtype (MIL is strict about dtypes)."""
        if isinstance(value, (int, float)):
            return np.array(value, dtype=self.np_dtype)
        return value

    def linear(self, x: Any, w: Any, b: Any | None = None) -> Any:
        if b is None:
            return self.mb.linear(x=x, weight=w)
        return self.mb.linear(x=x, weight=w, bias=b)

    def matmul(self, a: Any, b: Any, transpose_b: bool = False) -> Any:
        return self.mb.matmul(x=a, y=b, transpose_y=transpose_b)

    def add(self, a: Any, b: Any) -> Any:
        return self.mb.add(x=a, y=self._value(b))

    def mul(self, a: Any, b: Any) -> Any:
        return self.mb.mul(x=a, y=self._value(b))

    def gelu(self, x: Any) -> Any:
        return self.mb.gelu(x=x, mode="TANH_APPROXIMATION")

    def gelu_erf(self, x: Any) -> Any:
        return self.mb.gelu(x=x, mode="EXACT")

    def relu(self, x: Any) -> Any:
        return self.mb.relu(x=x)

    def layer_norm(self, x: Any, gamma: Any, beta: Any, eps: float) -> Any:
        return self.mb.layer_norm(x=x, axes=[-1], gamma=gamma, beta=beta, epsilon=self.np_dtype(eps))

    def softmax(self, x: Any, axis: int) -> Any:
        return self.mb.softmax(x=x, axis=axis)

    def reshape(self, x: Any, shape: Sequence[int]) -> Any:
        return self.mb.reshape(x=x, shape=np.array(list(shape), dtype=np.int32))

    def transpose(self, x: Any, perm: Sequence[int]) -> Any:
        return self.mb.transpose(x=x, perm=list(perm))

    def conv2d(
        self,
        x: Any,
        w: Any,
        b: Any | None = None,
        stride: int = 1,
        padding: int | str = 0,
        groups: int = 1,
    ) -> Any:
        # Explicit "custom" padding: MIL's own "same" places odd padding differently from MLX.
        pad = resolve_padding(padding, int(np.shape(w)[2]))
        kwargs: dict[str, Any] = {
            "x": x,
            "weight": w,
            "strides": [stride, stride],
            "pad_type": "custom",
            "pad": [pad, pad, pad, pad],
            "groups": groups,
        }
        if b is not None:
            kwargs["bias"] = b
        return self.mb.conv(**kwargs)

    def gather(self, table: Any, ids: Any) -> Any:
        return self.mb.gather(x=table, indices=ids, axis=0)

    def take(self, x: Any, index: int, axis: int) -> Any:
        return self.mb.gather(x=x, indices=np.int32(index), axis=axis)

    def concat(self, xs: Sequence[Any], axis: int) -> Any:
        return self.mb.concat(values=list(xs), axis=axis)

    def mean(self, x: Any, axis: int | Sequence[int], keepdims: bool = False) -> Any:
        axes = [axis] if isinstance(axis, int) else list(axis)
        return self.mb.reduce_mean(x=x, axes=axes, keep_dims=keepdims)

    def arange_like(self, x: Any, axis: int) -> Any:
        mb = self.mb
        length = mb.gather(x=mb.shape(x=x), indices=np.int32(axis), axis=0)
        return mb.range_1d(start=np.int32(0), end=length, step=np.int32(1))

    def l2_normalize(self, x: Any, eps: float) -> Any:
        mb = self.mb
        sum_sq = mb.reduce_sum_square(x=x, axes=[-1], keep_dims=True)
        return mb.mul(x=x, y=mb.rsqrt(x=sum_sq, epsilon=self.np_dtype(eps)))


def _input_types(workload: Workload, precision: str) -> dict[str, Any]:
    from coremltools.converters.mil.mil import types

    float_type = types.fp16 if precision == "fp16" else types.fp32
    table = {"float32": float_type, "int32": types.int32}
    return {name: table[dtype] for name, dtype in workload.input_dtypes.items()}


def _check_single_flexible(workload: Workload) -> dict[str, tuple[int, ...]]:
    flexible = workload.flexible_inputs()
    if len(flexible) > 1:
        raise ValueError(
            f"workload {workload.name!r}: inputs {sorted(flexible)} all vary between buckets; "
            "Core ML below macOS15 allows only one EnumeratedShapes input"
        )
    return flexible


def build_program(
    workload: Workload,
    weights: Mapping[str, Any],
    precision: str,
    buckets: Sequence[Bucket] | None = None,
) -> Any:
    """The workload's forward as a MIL Program (opset macOS14) over `buckets` (default: all).

    With one bucket every input is fixed; otherwise each axis that differs between buckets
    becomes a `get_new_symbol()` symbol (docs/PLATFORM.md, "Core ML conversion").
    """
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program, get_new_symbol

    chosen = tuple(buckets) if buckets else workload.buckets
    flexible = _check_single_flexible(workload) if len(chosen) > 1 else {}
    dtypes = _input_types(workload, precision)
    specs: dict[str, Any] = {}
    for name, shape in chosen[0].inputs.items():
        symbolic: list[Any] = list(shape)
        for axis in flexible.get(name, ()):
            symbolic[axis] = get_new_symbol()
        specs[name] = mb.TensorSpec(shape=tuple(symbolic), dtype=dtypes[name])

    module = importlib.import_module(workload.module)
    ops = MilOps(precision)
    prepared = {k: ops.const(v) for k, v in weights.items()}
    with Function(specs, opset_version=ct.target.macOS14) as function:
        out = module.forward(ops, prepared, dict(function.inputs))
        out = mb.identity(x=out, name=workload.output_name)
        function.set_outputs([out])
    program = Program()
    program.add_function("main", function)
    return program


def convert_inputs(workload: Workload, buckets: Sequence[Bucket] | None = None) -> list[Any]:
    """`ct.TensorType`s for ct.convert: EnumeratedShapes on the flexible input, fixed elsewhere."""
    import coremltools as ct

    chosen = tuple(buckets) if buckets else workload.buckets
    flexible = _check_single_flexible(workload) if len(chosen) > 1 else {}
    types_ = []
    for name, shape in chosen[0].inputs.items():
        if name in flexible:
            shapes = [b.inputs[name] for b in chosen]
            types_.append(ct.TensorType(name=name, shape=ct.EnumeratedShapes(shapes=shapes, default=shape)))
        else:
            types_.append(ct.TensorType(name=name, shape=shape))
    return types_


def convert_workload(
    workload: Workload,
    weights: Mapping[str, Any],
    precision: str,
    quantization: Mapping[str, Any] | None = None,
    buckets: Sequence[Bucket] | None = None,
) -> Any:
    """Build and convert to an mlprogram MLModel (not loaded: prediction needs macOS)."""
    import coremltools as ct

    program = build_program(workload, weights, precision, buckets)
    model = ct.convert(
        program,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.macOS14,
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        inputs=convert_inputs(workload, buckets),
        skip_model_load=True,
    )
    if quantization and quantization.get("method", "none") != "none":
        model = quantize(model, quantization)
    return model


def quantization_policy(quantization: Mapping[str, Any] | None) -> dict[str, Any]:
    """The policy record for a quantization request (method "none" if None)."""
    import coremltools as ct

    q = dict(quantization or {})
    method = q.get("method", "none")
    if method == "none":
        return {"method": "none", "target": "macOS14", "coremltools": ct.__version__}
    if method != "linear":
        raise ValueError(f"quantization method {method!r} is not supported; use 'linear' or 'none'")
    dtype = q.get("dtype", "int8")
    if dtype != "int8":
        raise ValueError(f"linear quantization dtype {dtype!r} is not supported; use 'int8'")
    granularity = q.get("granularity", "per_channel")
    if granularity not in ("per_channel", "per_tensor"):
        raise ValueError(f"granularity {granularity!r}: macOS14 allows per_channel or per_tensor")
    return {
        "method": "linear",
        "mode": q.get("mode", "linear_symmetric"),
        "dtype": dtype,
        "nbits": 8,
        "granularity": granularity,
        "block_size": None,
        "weight_threshold": int(q.get("weight_threshold", 2048)),
        "target": "macOS14",
        "coremltools": ct.__version__,
    }


def quantize(model: Any, quantization: Mapping[str, Any]) -> Any:
    """int8 linear weight quantization (cto.coreml.linear_quantize_weights)."""
    import coremltools.optimize as cto

    policy = quantization_policy(quantization)
    config = cto.coreml.OptimizationConfig(
        global_config=cto.coreml.OpLinearQuantizerConfig(
            mode=policy["mode"],
            dtype=policy["dtype"],
            granularity=policy["granularity"],
            weight_threshold=policy["weight_threshold"],
        )
    )
    return cto.coreml.linear_quantize_weights(model, config)
