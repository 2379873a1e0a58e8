"""The workload definitions: `Workload`, `Bucket`, the `Ops` protocol, the registry and the
output comparison (imported lazily through `node_agent.workloads`; see its docstring).

Tolerances: ``tolerances[precision]`` holds ``max_abs`` (max |out - ref|), ``max_rel``
(max |out - ref| divided by max |ref|, a scale-free abs error) and ``min_cosine`` (cosine
similarity of the flattened outputs), all against the numpy float64 reference. See
`compare_outputs` / `tolerance_failures`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from node_agent.workloads import WORKLOAD_NAMES, workload_missing_reason


@dataclass(frozen=True)
class Bucket:
    """One input-shape configuration of a workload (a cell runs one bucket)."""

    name: str
    """Short id, e.g. "b1", "s128", "img64", "ctx512"."""
    inputs: dict[str, tuple[int, ...]]
    """Input name -> shape, in the order the model declares its inputs."""
    budget_ms: float
    """Default p95 latency budget for this bucket."""


@dataclass(frozen=True)
class Workload:
    """A named network with its buckets, dtypes, tolerances and implementing module."""

    name: str
    description: str
    buckets: tuple[Bucket, ...]
    input_dtypes: dict[str, str]
    """Input name -> "float32" | "int32" (float inputs become float16 in fp16 Core ML packages)."""
    output_kind: str
    """"embedding" | "logits" (compare with top-k agreement too) | "tensor"."""
    tokens_per_call: int | None
    """Tokens produced per call (decoder-step), for tokens/s; None otherwise."""
    tolerances: dict[str, dict[str, float]]
    """Precision ("fp32", "fp16") -> {"max_abs", "max_rel", "min_cosine"} against numpy float64."""
    module: str
    """Dotted module with make_weights(seed) / make_inputs(bucket, seed, count) / forward(ops, w, x)."""
    output_name: str = "output"
    """Name of the single model output (the Core ML output feature name)."""
    notes: tuple[str, ...] = field(default=())
    """Design decisions worth showing next to results (e.g. "no attention mask input")."""

    def bucket(self, name: str) -> Bucket:
        """The bucket called `name`; KeyError listing the known names otherwise."""
        for bucket in self.buckets:
            if bucket.name == name:
                return bucket
        known = ", ".join(b.name for b in self.buckets)
        raise KeyError(f"workload {self.name!r} has no bucket {name!r}; known buckets: {known}")

    def flexible_inputs(self) -> dict[str, tuple[int, ...]]:
        """Input name -> axes whose size differs between buckets (the enumerated axes)."""
        flexible: dict[str, tuple[int, ...]] = {}
        first = self.buckets[0].inputs
        for input_name, shape in first.items():
            axes = tuple(
                axis
                for axis in range(len(shape))
                if any(b.inputs[input_name][axis] != shape[axis] for b in self.buckets[1:])
            )
            if axes:
                flexible[input_name] = axes
        return flexible


class Ops(Protocol):
    """The op namespace every workload's forward is written against.

    Tensors are backend values (np.ndarray, mx.array, MIL Var); weights are first passed
    through `const` (see `prepare`). Conventions: `linear` weights are (out, in) like
    torch/mlx/mb.linear; conv is NCHW with weights (O, I/groups, kh, kw); `padding` is an
    explicit symmetric pixel count (or "valid" = 0, "same" = kh // 2), never the backend's
    "same" mode, whose odd-padding placement differs between MIL and MLX; reshapes use -1
    for the flexible axis so the graphs stay shape-agnostic.
    """

    def const(self, array: Any) -> Any:
        """A weight or input array in this backend's dtype (integer arrays stay int32)."""
        ...

    def linear(self, x: Any, w: Any, b: Any | None = None) -> Any: ...

    def matmul(self, a: Any, b: Any, transpose_b: bool = False) -> Any: ...

    def add(self, a: Any, b: Any) -> Any:
        """Elementwise, broadcasting; `b` may be a Python float."""
        ...

    def mul(self, a: Any, b: Any) -> Any:
        """Elementwise, broadcasting; `b` may be a Python float."""
        ...

    def gelu(self, x: Any) -> Any:
        """GELU, tanh approximation (mb.gelu TANH_APPROXIMATION, mlx nn.gelu_approx)."""
        ...

    def gelu_erf(self, x: Any) -> Any:
        """Exact (erf) GELU, as BERT uses (mb.gelu EXACT, mlx nn.gelu)."""
        ...

    def relu(self, x: Any) -> Any: ...

    def layer_norm(self, x: Any, gamma: Any, beta: Any, eps: float) -> Any:
        """Normalise over the last axis."""
        ...

    def softmax(self, x: Any, axis: int) -> Any: ...

    def reshape(self, x: Any, shape: Sequence[int]) -> Any: ...

    def transpose(self, x: Any, perm: Sequence[int]) -> Any: ...

    def conv2d(
        self,
        x: Any,
        w: Any,
        b: Any | None = None,
        stride: int = 1,
        padding: int | str = 0,
        groups: int = 1,
    ) -> Any: ...

    def gather(self, table: Any, ids: Any) -> Any:
        """Rows of `table` (axis 0) for integer `ids`: result shape ids.shape + table.shape[1:]."""
        ...

    def take(self, x: Any, index: int, axis: int) -> Any:
        """x indexed by one integer along `axis` (that axis disappears)."""
        ...

    def concat(self, xs: Sequence[Any], axis: int) -> Any: ...

    def mean(self, x: Any, axis: int | Sequence[int], keepdims: bool = False) -> Any: ...

    def arange_like(self, x: Any, axis: int) -> Any:
        """int32 [0, 1, ..., x.shape[axis] - 1]; works on a flexible axis."""
        ...

    def l2_normalize(self, x: Any, eps: float) -> Any:
        """x / sqrt(sum(x**2, last axis) + eps)."""
        ...


def prepare(ops: Ops, arrays: Mapping[str, Any]) -> dict[str, Any]:
    """Every array through `ops.const`: do this once for weights, not on every call."""
    return {name: ops.const(value) for name, value in arrays.items()}


_TOL_FP32 = {"max_abs": 1e-3, "max_rel": 1e-4, "min_cosine": 0.99999}

_WORKLOADS: tuple[Workload, ...] = (
    Workload(
        name="mlp",
        description="Two-layer MLP (D=256, F=1024, tanh GELU); batch buckets.",
        buckets=(
            Bucket("b1", {"x": (1, 256)}, 2.0),
            Bucket("b8", {"x": (8, 256)}, 3.0),
            Bucket("b32", {"x": (32, 256)}, 5.0),
        ),
        input_dtypes={"x": "float32"},
        output_kind="tensor",
        tokens_per_call=None,
        tolerances={
            "fp32": dict(_TOL_FP32),
            "fp16": {"max_abs": 2e-2, "max_rel": 5e-3, "min_cosine": 0.9995},
        },
        module="node_agent.workloads.mlp",
    ),
    Workload(
        name="convnet",
        description=(
            "Mobile-style conv stack: conv3x3/2 (BN folded) + 4 depthwise-separable blocks, "
            "global mean pool, 10-class linear head; image-size buckets."
        ),
        buckets=(
            Bucket("img64", {"x": (1, 3, 64, 64)}, 3.0),
            Bucket("img128", {"x": (1, 3, 128, 128)}, 8.0),
        ),
        input_dtypes={"x": "float32"},
        output_kind="logits",
        tokens_per_call=None,
        tolerances={
            "fp32": dict(_TOL_FP32),
            "fp16": {"max_abs": 3e-2, "max_rel": 1e-2, "min_cosine": 0.999},
        },
        module="node_agent.workloads.convnet",
        notes=("MLX convolutions are NHWC: MlxOps transposes around each conv2d (a real MLX cost).",),
    ),
    Workload(
        name="decoder-step",
        description=(
            "One decode step of a 2-layer transformer (D=256, 4 heads, F=1024, vocab 1024) over "
            "a KV cache; context-length buckets; attention as matmul + softmax."
        ),
        buckets=(
            Bucket("ctx128", {"x": (1, 1, 256), "kv_cache": (2, 2, 4, 128, 64)}, 2.0),
            Bucket("ctx512", {"x": (1, 1, 256), "kv_cache": (2, 2, 4, 512, 64)}, 3.0),
            Bucket("ctx1024", {"x": (1, 1, 256), "kv_cache": (2, 2, 4, 1024, 64)}, 5.0),
        ),
        input_dtypes={"x": "float32", "kv_cache": "float32"},
        output_kind="logits",
        tokens_per_call=1,
        tolerances={
            "fp32": dict(_TOL_FP32),
            "fp16": {"max_abs": 3e-2, "max_rel": 1e-2, "min_cosine": 0.999},
        },
        module="node_agent.workloads.decoder_step",
        notes=(
            "K and V of all layers are packed into ONE input kv_cache (layers, 2, heads, T, "
            "head_dim): Core ML below macOS15 allows a single EnumeratedShapes input.",
        ),
    ),
    Workload(
        name="minilm-l6",
        description=(
            "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384 wide, 12 heads), published "
            "weights, mean pooling + L2 normalisation; sequence-length buckets."
        ),
        buckets=(
            Bucket("s32", {"input_ids": (1, 32)}, 5.0),
            Bucket("s128", {"input_ids": (1, 128)}, 10.0),
            Bucket("s256", {"input_ids": (1, 256)}, 20.0),
            Bucket("s512", {"input_ids": (1, 512)}, 40.0),
        ),
        input_dtypes={"input_ids": "int32"},
        output_kind="embedding",
        tokens_per_call=None,
        tolerances={
            "fp32": {"max_abs": 1e-4, "max_rel": 1e-3, "min_cosine": 0.99999},
            "fp16": {"max_abs": 1e-2, "max_rel": 5e-2, "min_cosine": 0.999},
        },
        module="node_agent.workloads.minilm",
        notes=(
            "Single input input_ids, every token real: no attention-mask input (a second "
            "EnumeratedShapes input needs macOS15).",
            "Eval inputs are seeded random word-piece ids with [CLS] first and [SEP] last.",
        ),
    ),
)

if tuple(w.name for w in _WORKLOADS) != WORKLOAD_NAMES:  # the cheap name list must not drift
    raise ImportError(f"node_agent.workloads.WORKLOAD_NAMES {WORKLOAD_NAMES} differs from the definitions")


def workload_definition(name: str) -> Workload:
    """The definition of built-in workload `name` (buckets, tolerances), whether or not this
    interpreter can run it (a spec names workloads a node may lack); ValueError if unknown."""
    for workload in _WORKLOADS:
        if workload.name == name:
            return workload
    raise ValueError(f"unknown workload {name!r}; known workloads: {', '.join(WORKLOAD_NAMES)}")


def get_workload(name: str) -> Workload:
    """The workload called `name`, ready to build or run here; ValueError saying what is missing
    (and the command that installs it) or naming the known workloads otherwise."""
    workload = workload_definition(name)
    reason = workload_missing_reason(name)
    if reason is not None:
        raise ValueError(reason)
    return workload


def compare_outputs(output: Any, reference: Any) -> dict[str, float]:
    """max_abs, max_rel (over max |ref|) and cosine of `output` against `reference`."""
    import numpy as np

    out = np.asarray(output, dtype=np.float64).ravel()
    ref = np.asarray(reference, dtype=np.float64).ravel()
    if out.shape != ref.shape:
        raise ValueError(f"output has {out.size} values, reference {ref.size}")
    diff = np.abs(out - ref)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    denom = float(np.linalg.norm(out) * np.linalg.norm(ref))
    cosine = float(out @ ref / denom) if denom > 0 else (1.0 if max_abs == 0 else 0.0)
    return {"max_abs": max_abs, "max_rel": max_abs / scale if scale > 0 else max_abs, "cosine": cosine}


def tolerance_failures(workload: Workload, precision: str, metrics: Mapping[str, float]) -> list[str]:
    """Human-readable reasons `metrics` (from `compare_outputs`) break the tolerance; [] if fine."""
    tol = workload.tolerances[precision]
    failures = []
    if metrics["max_abs"] > tol["max_abs"]:
        failures.append(f"max_abs {metrics['max_abs']:.3g} > {tol['max_abs']:.3g}")
    if metrics["max_rel"] > tol["max_rel"]:
        failures.append(f"max_rel {metrics['max_rel']:.3g} > {tol['max_rel']:.3g}")
    if metrics["cosine"] < tol["min_cosine"]:
        failures.append(f"cosine {metrics['cosine']:.7f} < {tol['min_cosine']}")
    return failures
