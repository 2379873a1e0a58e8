"""What the HTML report's charts need beyond the table: sample distributions, the sustained
latency over time and the node's thermal states, read from the store for the table's cells.

Kept small and deterministic: a distribution is 101 evenly spaced quantiles of a cell's
measured samples (enough for a violin's shape at any sample count); a sustained series is the
median and p95 of one-second bins (narrower for runs under a minute) of the sustained run
(measure + sustained phases, on the node's clock); thermal bands are the pressure readings of
that cell inside the series' time span, each lasting until the next reading. Stored samples are
the elapsed time of the summary's `loops` calls; charts show per-call times (elapsed / loops).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from node_agent.stats import nearest_rank

if TYPE_CHECKING:
    from fleet_tui.analysis.tables import ComparisonTable
    from fleet_tui.store import Store

CHART_DATA_VERSION: Final = 1
QUANTILES: Final = 101
BIN_S: Final = 1.0
MAX_BINS: Final = 600
MIN_POINTS: Final = 60


@dataclass(frozen=True)
class Distribution:
    row: str
    """The table row key."""
    column: str
    """The table column key."""
    n: int
    quantiles_ms: tuple[float, ...]
    """QUANTILES evenly spaced quantiles (0 .. 1, nearest rank) of the measured samples, ms."""


@dataclass(frozen=True)
class ThermalBand:
    start_s: float
    end_s: float
    state: str
    """The node's thermal pressure: nominal, fair, serious, critical (or unknown)."""


@dataclass(frozen=True)
class SustainedSeries:
    row: str
    column: str
    t_s: tuple[float, ...]
    """Bin start, seconds since the first sample of the sustained run."""
    p50_ms: tuple[float, ...]
    p95_ms: tuple[float, ...]
    sustained_from_s: float | None
    """Where the sustained phase starts (before it: the burst measurement of the same run)."""
    bands: tuple[ThermalBand, ...] = ()


@dataclass(frozen=True)
class ChartData:
    distributions: tuple[Distribution, ...] = ()
    sustained: tuple[SustainedSeries, ...] = ()
    version: int = CHART_DATA_VERSION


def _quantiles(values: list[float]) -> tuple[float, ...]:
    ordered = sorted(values)
    return tuple(nearest_rank(ordered, i / (QUANTILES - 1)) / 1e6 for i in range(QUANTILES))


def _bins(
    values: list[float], times: list[int], origin: int
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    span_s = (times[-1] - origin) / 1e9 if times else 0.0
    # One-second bins for real sustained runs (minutes); short runs get ~MIN_POINTS bins.
    width = max(span_s / MAX_BINS, min(BIN_S, span_s / MIN_POINTS)) or BIN_S
    groups: dict[int, list[float]] = {}
    for t, x in zip(times, values, strict=True):
        groups.setdefault(int((t - origin) / 1e9 // width), []).append(x)
    keys = sorted(groups)
    p50 = tuple(statistics.median(groups[k]) / 1e6 for k in keys)
    p95 = tuple(nearest_rank(sorted(groups[k]), 0.95) / 1e6 for k in keys)
    return tuple(k * width for k in keys), p50, p95


def chart_data(store: Store, table: ComparisonTable) -> ChartData:
    """Chart data for every cell of `table` that names a stored cell (related tables too)."""
    from fleet_tui.analysis.evidence import loops_of
    from fleet_tui.export._text import all_tables

    distributions: list[Distribution] = []
    series: list[SustainedSeries] = []
    seen: set[tuple[str, str]] = set()
    thermal_cache: dict[tuple[int, str], list[tuple[int, int | None, str]]] = {}
    loops_cache: dict[int, dict[int, int]] = {}
    for one in all_tables(table):
        if one.kind not in ("soc", "coreml_vs_mlx"):
            continue
        for cell in one.cells:
            if cell.cell_id is None or cell.state != "done" or (cell.row, cell.column) in seen:
                continue
            seen.add((cell.row, cell.column))
            if cell.run_id is not None and cell.run_id not in loops_cache:
                loops_cache[cell.run_id] = {
                    o.cell_id: loops_of(o.summary) for o in store.outcomes(cell.run_id)
                }
            loops = loops_cache.get(cell.run_id or -1, {}).get(cell.cell_id, 1)
            batches = store.sample_batches(cell.cell_id)
            measured = [v / loops for b in batches if b.phase == "measure" for v in b.ns]
            if measured:
                distributions.append(Distribution(cell.row, cell.column, len(measured), _quantiles(measured)))
            sustained_runs = {b.run_idx for b in batches if b.phase == "sustained"}
            if not sustained_runs:
                continue
            run = max(sustained_runs)
            values: list[float] = []
            times: list[int] = []
            sustained_from: int | None = None
            for b in batches:
                if b.run_idx != run or b.phase not in ("measure", "sustained") or len(b.t_ns) != len(b.ns):
                    continue
                if b.phase == "sustained" and sustained_from is None and b.t_ns:
                    sustained_from = b.t_ns[0]
                values += [v / loops for v in b.ns]
                times += b.t_ns
            if not times:
                continue
            pairs = sorted(zip(times, values, strict=True))
            times, values = [t for t, _ in pairs], [v for _, v in pairs]
            origin = times[0]
            t_s, p50, p95 = _bins(values, times, origin)
            node = _node_of(one, cell.column)
            bands: list[ThermalBand] = []
            if node is not None and cell.run_id is not None:
                key = (cell.run_id, node)
                if key not in thermal_cache:
                    thermal_cache[key] = [
                        (p.t_ns, p.cell_id, str(p.state.get("thermal_pressure") or "unknown"))
                        for p in store.thermal(cell.run_id, node)
                    ]
                points = [
                    (t, state)
                    for t, cell_ref, state in thermal_cache[key]
                    if cell_ref == cell.cell_id and origin <= t <= times[-1]
                ]
                end_s = (times[-1] - origin) / 1e9
                for i, (t, state) in enumerate(points):
                    stop = points[i + 1][0] if i + 1 < len(points) else times[-1]
                    bands.append(ThermalBand((t - origin) / 1e9, min(end_s, (stop - origin) / 1e9), state))
            series.append(
                SustainedSeries(
                    cell.row,
                    cell.column,
                    t_s,
                    p50,
                    p95,
                    None if sustained_from is None else (sustained_from - origin) / 1e9,
                    tuple(bands),
                )
            )
    return ChartData(tuple(distributions), tuple(series))


def _node_of(table: ComparisonTable, column_key: str) -> str | None:
    for column in table.columns:
        if column.key == column_key:
            return column.node
    return None
