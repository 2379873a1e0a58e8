"""Where Core ML plans to run each op: MLComputePlan (macOS 14.4+), summarised per compute unit.

The walk is docs/PLATFORM.md, "Compute plan", copied faithfully (``load_from_path(path=...,
compute_units=...)``, ``program.functions["main"]``, ``const`` ops skipped, per-op preferred and
supported devices and cost weights). `summarize_ops` turns its op list into what the table
shows: op counts and cost-weighted shares on ane / gpu / cpu, and the ops that fell back.

This is the framework's *plan*, not measured execution; pair it with per-compute-unit timings.
coremltools is imported lazily: this module is part of the stdlib-only agent core.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

MIN_MACOS = (14, 4)
_DEV = {"MLCPUComputeDevice": "cpu", "MLGPUComputeDevice": "gpu", "MLNeuralEngineComputeDevice": "ane"}
DEVICES = ("ane", "gpu", "cpu")


def on_macos() -> bool:
    """sys.platform == "darwin", behind a call so type checkers on Linux keep the macOS branch."""
    return sys.platform == "darwin"


def unsupported_reason() -> str | None:
    """Why MLComputePlan cannot be read here, or None."""
    if not on_macos():
        return f"MLComputePlan needs macOS {'.'.join(map(str, MIN_MACOS))}+ (this node runs {sys.platform})"
    text = platform.mac_ver()[0]
    try:
        version = tuple(int(p) for p in text.split(".") if p)
    except ValueError:
        version = ()
    if version and version < MIN_MACOS:
        return f"MLComputePlan API is available for macos versions >= 14.4 (this node runs {text})"
    return None


def plan_ops(plan: Any) -> dict[str, Any]:
    """docs/PLATFORM.md, "Compute plan"'s walk over a loaded plan: ops, count_by_device, cost_by_device."""
    prog = plan.model_structure.program
    if prog is None:
        raise ValueError("not an ML program")
    ops: list[dict[str, Any]] = []
    by_dev_count: dict[str | None, int] = {}
    by_dev_cost: dict[str | None, float] = {}

    def walk(block: Any) -> None:
        for op in block.operations:
            for sub in op.blocks:
                walk(sub)
            if op.operator_name == "const":
                continue
            usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
            cost = plan.get_estimated_cost_for_mlprogram_operation(op)
            pref = _DEV.get(type(usage.preferred_compute_device).__name__, "?") if usage else None
            supp = (
                sorted(_DEV.get(type(d).__name__, "?") for d in usage.supported_compute_devices)
                if usage
                else []
            )
            w = cost.weight if cost else None
            ops.append(
                {
                    "op": op.operator_name,
                    "out": [o.name for o in op.outputs],
                    "pref": pref,
                    "supported": supp,
                    "cost": w,
                }
            )
            by_dev_count[pref] = by_dev_count.get(pref, 0) + 1
            if w is not None:
                by_dev_cost[pref] = by_dev_cost.get(pref, 0.0) + w

    walk(prog.functions["main"].block)
    return {"ops": ops, "count_by_device": by_dev_count, "cost_by_device": by_dev_cost}


def compute_plan_summary(compiled_path: str, cu: Any) -> dict[str, Any]:
    """Load the plan of a compiled model (.mlmodelc) for compute units `cu` and walk it (A3)."""
    from coremltools.models.compute_plan import MLComputePlan

    plan = MLComputePlan.load_from_path(path=compiled_path, compute_units=cu)
    return plan_ops(plan)


def is_fallback(op: dict[str, Any], compute_units: str) -> bool:
    """An op that fell back: preferred CPU while the ANE could run it, or not on the ANE under cpu_and_ne."""
    if op["pref"] == "cpu" and "ane" in op["supported"]:
        return True
    return compute_units == "cpu_and_ne" and op["pref"] != "ane"


def summarize_ops(raw: dict[str, Any], compute_units: str, *, max_listed: int = 20) -> dict[str, Any]:
    """Counts, cost-weighted shares (summing to 1 over ops with a cost) and fallbacks."""
    ops: list[dict[str, Any]] = raw["ops"]
    counts = dict.fromkeys(DEVICES, 0)
    costs = dict.fromkeys(DEVICES, 0.0)
    other_count = 0
    for op in ops:
        dev = op["pref"]
        if dev in counts:
            counts[dev] += 1
            if op["cost"] is not None:
                costs[dev] += op["cost"]
        else:
            other_count += 1  # no usage reported (None) or an unknown device class
    total_cost = sum(costs.values())
    shares = {dev: (costs[dev] / total_cost if total_cost > 0 else None) for dev in DEVICES}
    fallbacks = [op for op in ops if is_fallback(op, compute_units)]
    return {
        "status": "ok",
        "compute_units": compute_units,
        "n_ops": len(ops),
        "op_count": counts,
        "op_count_unplaced": other_count,
        "cost_share": shares,
        "cost_total": total_cost,
        "n_fallback": len(fallbacks),
        "fallback_ops": [
            {
                "op": op["op"],
                "out": op["out"][:1],
                "pref": op["pref"],
                "supported": op["supported"],
                "cost": op["cost"],
            }
            for op in fallbacks[:max_listed]
        ],
        "ops_by_type": _ops_by_type(ops),
    }


def _ops_by_type(ops: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """operator name -> {device: count}: a compact view of where each kind of op goes."""
    table: dict[str, dict[str, int]] = {}
    for op in ops:
        row = table.setdefault(op["op"], {})
        key = op["pref"] or "none"
        row[key] = row.get(key, 0) + 1
    return table


def compute_plan_for(compiled_path: str, compute_units: str) -> dict[str, Any]:
    """The summary for one compiled model and compute-unit name; status unsupported/failed with a reason."""
    reason = unsupported_reason()
    if reason is not None:
        return {"status": "unsupported", "reason": reason, "compute_units": compute_units}
    try:
        import coremltools as ct

        from node_agent.engines.coreml_engine import COMPUTE_UNIT_NAMES

        cu = getattr(ct.ComputeUnit, COMPUTE_UNIT_NAMES[compute_units])
        return summarize_ops(compute_plan_summary(compiled_path, cu), compute_units)
    except Exception as exc:  # the plan is a diagnostic: never fail the cell for it
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "compute_units": compute_units}
