"""The one writer of sweep-spec TOML and node facts for the tests.

Tests differ in their workloads, engines and sections, not in how a spec is spelled: they all build
it here, so a change to the spec format is made once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Buckets = Sequence[tuple[str, float]]
Workloads = Sequence[tuple[str, Buckets]]

ONE_MLP_BUCKET: Workloads = (("mlp", (("b1", 2.0),)),)


def spec_toml(
    name: str,
    *,
    workloads: Workloads = ONE_MLP_BUCKET,
    engines: str = "numpy = [{}]",
    sections: Mapping[str, str] | None = None,
    description: str | None = None,
) -> str:
    """A spec's TOML text: the name, one `[[workload]]` per workload with its buckets, `[engines]`
    (given as TOML lines), then each further section (`{"measure": "runs = 3"}` → `[measure]`)."""
    parts = [f'name = "{name}"']
    if description is not None:
        parts.append(f'description = "{description}"')
    for workload, buckets in workloads:
        parts.append(f'[[workload]]\nname = "{workload}"')
        for bucket, budget in buckets:
            parts.append(f'  [[workload.bucket]]\n  name = "{bucket}"\n  budget_ms = {budget!r}')
    parts.append("[engines]\n" + engines)
    for section, body in (sections or {}).items():
        parts.append(f"[{section}]\n{body.strip()}")
    return "\n".join(parts) + "\n"


def linux_facts(*available: str, **unavailable: str) -> dict[str, Any]:
    """Probe facts of a Linux node: the engines named in `available` are available, each keyword
    names an engine and the reason it is not (`coreml="needs macOS"`)."""
    engines: dict[str, str] = dict.fromkeys(available, "available")
    engines.update(unavailable)
    return {"os": "linux", "engines": engines}
