"""The table model as JSON, for programs: every field of `ComparisonTable`, numbers unrounded.

Document shape: ``{"schema": SCHEMA, "table_model_version": N, "table": {...}}`` where
``table`` is the dataclass tree (tuples as lists, config pairs as objects, absent figures as
null). Keys follow the field names of `fleet_tui.analysis.tables`, whose docstrings give the
units (``_ms`` milliseconds, ``_usd`` US dollars, ratios unitless).

Schema history (bump the number when a field is renamed, removed or changes meaning; adding a
field is compatible and keeps it):
    fleet-tui.table/1 -- first version: table model 1.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any, Final

from fleet_tui.analysis.tables import TABLE_MODEL_VERSION, ComparisonTable

if TYPE_CHECKING:
    from fleet_tui.export.chart_data import ChartData

SCHEMA: Final = "fleet-tui.table/1"


def render(table: ComparisonTable, charts: ChartData | None = None) -> bytes:
    return (json.dumps(document(table), indent=2, allow_nan=False) + "\n").encode("utf-8")


def document(table: ComparisonTable) -> dict[str, Any]:
    """The JSON document (also embedded in the HTML report)."""
    return {"schema": SCHEMA, "table_model_version": TABLE_MODEL_VERSION, "table": plain(table)}


def plain(value: Any) -> Any:
    """Dataclasses -> dicts, tuples -> lists, (name, value) config pairs -> objects, NaN -> null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name == "config" and isinstance(item, tuple):
                out[f.name] = {str(k): plain(v) for k, v in item}
            else:
                out[f.name] = plain(item)
        return out
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
