"""The one table model every renderer draws from: terminal, CSV, Markdown, JSON, HTML and the TUI.

Plain frozen dataclasses, no I/O and no formatting: `fleet_tui.analysis.compare` and
`fleet_tui.analysis.capex` build a `ComparisonTable`, renderers only read it. So a terminal table
and an exported file can never disagree.

Units are explicit in every field name or docstring: latencies are milliseconds (``_ms``), money is
US dollars (``_usd``), ratios are unitless (this cell over its reference, so for latency metrics a
ratio above 1 means *slower*), shares are fractions in [0, 1].

Stability: renderers outside this package depend on these names. Add fields (with defaults) rather
than rename or remove; bump `TABLE_MODEL_VERSION` when a field's meaning changes.
History: 1 -- first version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

TABLE_MODEL_VERSION: Final = 1

Verdict = Literal["faster", "slower", "no_significant_difference", "insufficient"]
"""The three-state verdict of a ratio, plus "insufficient" (too few runs, floors not met, not
comparable): a cell that is "insufficient" is never called faster or slower."""
VERDICTS: Final = ("faster", "slower", "no_significant_difference", "insufficient")

TableKind = Literal["soc", "run_vs_run", "coreml_vs_mlx", "capex"]
"""soc: nodes side by side in one or more runs; run_vs_run: two runs matched by key;
coreml_vs_mlx: each Core ML cell against the MLX reference on the same node; capex: cost view."""

Metric = Literal["p50", "p95", "cold", "drift", "share", "cost", "energy"]
METRICS: Final = ("p50", "p95", "cold", "drift", "share", "cost", "energy")


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% confidence interval.

    `value`, `low` and `high` share the unit in `unit`; `low`/`high` are None when no interval
    is justified (for example a single run and too few samples for an order-statistic interval).
    """

    value: float
    """The point estimate, in `unit`."""
    low: float | None = None
    """Lower bound of the 95% interval, in `unit` (None: no interval)."""
    high: float | None = None
    """Upper bound of the 95% interval, in `unit` (None: no interval)."""
    unit: str = "ms"
    """"ms" for latencies, "x" for unitless ratios, "usd" for money, "1/s" for throughput,
    "months" for payback."""
    method: str = ""
    """How the interval was obtained: "run_level_t" (geometric mean of per-run statistics with a
    t interval over runs: the run is the unit of replication), "order_statistic" (exact interval
    of a single run's pooled samples), "bootstrap" (the agent's drift bootstrap), "propagated"
    (derived from another interval, e.g. cost from the latency interval), or "" (none)."""


@dataclass(frozen=True)
class Column:
    """One column: a node (SoC view, Core ML vs MLX, capex) or a run (run vs run)."""

    key: str
    """Unique column id used by `Cell.column`: the node name, "node@run" when a node appears in
    several runs, or "run:N" in a run-vs-run table."""
    label: str
    """What a renderer prints as the header."""
    node: str | None
    """The node of this column; None for a run column of a run-vs-run table."""
    run_id: int | None
    """The run the column's cells come from (None when cells come from several runs)."""
    chip: str | None = None
    """The chip the node reported when probed (e.g. "Apple M2 Pro"); None when never probed."""
    tier: str | None = None
    """The tier label from the inventory (e.g. "M2 Pro"); a label, not a measurement."""
    tier_mismatch: bool = False
    """True when the inventory tier does not match the probed chip (shown as a warning)."""
    is_baseline: bool = False
    """True for the column every ratio in the table is taken against."""
    kwh_usd: float | None = None
    """Electricity price at the node in US dollars per kWh (inventory, else the spec)."""
    hourly_usd: float | None = None
    """Rental price of the node in US dollars per hour (inventory), None when not given."""
    purchase_usd: float | None = None
    """Purchase price of the node in US dollars (inventory), None when not given."""
    group: str | None = None
    """Columns are grouped by probed chip: the chip (or "unknown chip") this column belongs to."""


@dataclass(frozen=True)
class Row:
    """One row: a (workload, bucket, engine config); in a run-vs-run table also a node."""

    key: str
    """Unique row id used by `Cell.row`: "workload/bucket/engine-key", prefixed "node:" in a
    run-vs-run table."""
    workload: str
    bucket: str
    engine: str
    """numpy | mlx | coreml."""
    engine_key: str
    """The engine config as the cell key writes it (e.g. "coreml-cpu_and_ne-fp16")."""
    config: tuple[tuple[str, str], ...] = ()
    """The engine config as sorted (name, value) pairs (dtype/precision, compute_units, device)."""
    node: str | None = None
    """Set only in run-vs-run tables, where columns are runs and rows are matched per node."""
    budget_ms: float | None = None
    """The bucket's p95 budget from the input contract, in milliseconds (None when not set)."""


@dataclass(frozen=True)
class DeviceShare:
    """Where the compute plan put the work, for one device."""

    device: str
    """"ane", "gpu" or "cpu"."""
    cost_share: float
    """Fraction in [0, 1] of the plan's estimated cost on this device (cost-weighted)."""
    op_count: int
    """How many ops the plan prefers to run on this device."""


@dataclass(frozen=True)
class NumericCheck:
    """The numeric gate of a cell: its output against the numpy reference."""

    ok: bool | None
    """True within tolerance, False over it, None when not decided."""
    max_abs: float | None = None
    """Largest absolute difference, in the output's own unit."""
    max_rel: float | None = None
    """Largest relative difference (unitless)."""
    cosine: float | None = None
    """Cosine similarity of output and reference (unitless, 1 = identical direction)."""
    tolerance_max_rel: float | None = None
    """The precision's tolerance on max_rel (unitless)."""


@dataclass(frozen=True)
class GateBadge:
    """One stored gate verdict of a cell."""

    gate: str
    """coreml_regression | thermal_drift | over_budget | numeric_drift."""
    verdict: str
    """pass | fail | skipped."""
    detail: str
    """The gate's own sentence with its figures (milliseconds where it prints latencies)."""


@dataclass(frozen=True)
class Ratio:
    """A cell against its reference (the baseline column, the earlier run, or the MLX reference).

    All ratio fields are unitless: this cell's statistic over the reference's. For latency metrics
    below 1 is faster. The interval is Welch's on the log of per-run statistics: exp(d +- t*se)
    with Welch-Satterthwaite degrees of freedom.
    """

    metric: str
    """The statistic compared: "p50", "p95", "cold" (cold start) or "drift"."""
    reference: str
    """The column key (or a description) of what the ratio is taken against."""
    estimate: float | None
    """exp(mean log this - mean log reference); None when it cannot be computed."""
    low: float | None = None
    """Lower bound of the 95% interval of the ratio (unitless)."""
    high: float | None = None
    """Upper bound of the 95% interval of the ratio (unitless)."""
    verdict: Verdict = "insufficient"
    """faster / slower only when the interval excludes 1 AND |estimate - 1| >= min_effect."""
    min_effect: float = 0.02
    """The minimum effect a difference must reach to count (fraction, 0.02 = 2%)."""
    p_value: float | None = None
    """Two-sided Welch p-value on the log scale."""
    df: float | None = None
    """Welch-Satterthwaite degrees of freedom."""
    runs: int = 0
    """Runs of this cell that entered the test."""
    reference_runs: int = 0
    """Runs of the reference cell that entered the test."""
    runs_needed: int | None = None
    """Runs per side needed to resolve `min_effect` at 80% power from the observed between-run
    spread; set when the current runs cannot resolve it (then the text says "need N runs")."""
    resolvable_effect: float | None = None
    """The smallest effect (fraction) the current runs resolve at 80% power."""
    hl_ratio: float | None = None
    """Hodges-Lehmann shift of the log run statistics, as a ratio (unitless): the robust estimate."""
    mw_p: float | None = None
    """Exact two-sided Mann-Whitney p-value on the run statistics (None below 2 runs a side)."""
    robust_verdict: Verdict = "insufficient"
    """The verdict of the Hodges-Lehmann / Mann-Whitney second opinion, same rules."""
    methods_disagree: bool = False
    """True when the Welch verdict and the robust verdict differ (shown as a flag)."""
    numeric_gate_failed: bool = False
    """True when this cell's numeric gate failed: a speed-up is then never a plain win."""
    reason: str | None = None
    """Why the verdict is "insufficient" (floors, too few runs, not comparable)."""
    text: str = ""
    """One human sentence, e.g. "0.91x (0.88-0.94) faster" or "need 9 runs to resolve 2%"."""


@dataclass(frozen=True)
class Cost:
    """The cost view of one cell (US dollars; throughput per second)."""

    throughput_per_s: Estimate | None
    """Sustained inferences per second: 1000 / sustained p50 (ms); interval from the latency's."""
    cost_per_million_usd: Estimate | None
    """US dollars per million inferences at the hourly price, carrying the latency interval."""
    payback_months: float | None = None
    """Months of renting at `utilisation` that cost as much as buying (purchase / monthly rent)."""
    electricity_per_million_usd: float | None = None
    """US dollars of electricity per million inferences at `kwh_usd` (gross energy: idle
    included, the whole system where the reader has it); already added to `cost_per_million_usd`."""
    kwh_usd: float | None = None
    """The electricity price used (US dollars per kWh): the node's, else the spec's."""
    utilisation: float | None = None
    """The utilisation (fraction of hours used) the payback assumes."""
    meets_budget: bool | None = None
    """True when the upper CI bound of the sustained p95 is within the bucket's budget."""
    p95_upper_ms: float | None = None
    """The upper CI bound of the sustained p95 in milliseconds: what the budget is judged on."""


@dataclass(frozen=True)
class Energy:
    """A cell's energy figures (joules, watts), measured by a power reader on the node."""

    status: str
    """"ok" when published; else why not (energy_too_short, energy_unavailable, ...)."""
    reader: str | None = None
    """The reader that measured it (macmon, mactop, ioreport, powermetrics)."""
    reader_version: str | None = None
    """The reader's version (the tool's --version; the macOS build for ioreport/powermetrics)."""
    window: str | None = None
    """"measure" (every run's measured phase) or "sustained" (the sustained run only)."""
    j_per_inference: Estimate | None = None
    """SoC (CPU + GPU + ANE) joules per inference net of idle, run-level interval (unit "J")."""
    j_per_inference_system: Estimate | None = None
    """Whole-system joules per inference net of idle (where the reader has a system figure)."""
    watts_soc: float | None = None
    """Average SoC watts over the windows, idle included."""
    watts_system: float | None = None
    """Average whole-system watts over the windows, idle included (None without a system figure)."""
    idle_watts_soc: float | None = None
    """The idle baseline's SoC watts, measured just before each run with the same reader."""
    idle_watts_system: float | None = None
    """The idle baseline's whole-system watts."""
    perf_per_watt: float | None = None
    """Inferences per second per average SoC watt (= inferences per joule, gross)."""
    flags: tuple[str, ...] = ()
    """The energy figures' own flags (below_idle, energy_no_idle, rails_missing:...)."""


@dataclass(frozen=True)
class Cell:
    """One (row, column) cell of the table. Absent figures are None, never zero."""

    row: str
    """The `Row.key` of this cell."""
    column: str
    """The `Column.key` of this cell."""
    state: str
    """The stored cell state: done, unsupported, failed, lost, pending, running."""
    reason: str | None = None
    """Why the cell is not done (unsupported / failed reason), None when done."""
    run_id: int | None = None
    """The run the cell was measured in."""
    cell_id: int | None = None
    """The store id of the cell."""
    n: int = 0
    """Measured (measure-phase) samples of the cell's current attempt, all runs together."""
    runs: int = 0
    """Independent runs (fresh processes) with measured samples."""
    p50_ms: Estimate | None = None
    """Median latency in milliseconds with its 95% interval (see Estimate.method)."""
    p95_ms: Estimate | None = None
    """95th-percentile latency in milliseconds with its 95% interval."""
    per_run_p50_ms: tuple[float, ...] = ()
    """Each run's median latency in milliseconds, in run order (the unit of replication)."""
    per_run_p95_ms: tuple[float, ...] = ()
    """Each run's 95th-percentile latency in milliseconds, in run order."""
    cold_start_ms: Estimate | None = None
    """Cold start in milliseconds (load + compile + first inference), with a run-level interval."""
    drift: Estimate | None = None
    """Sustained p50 over burst p50 (unitless, > 1 = slower when sustained), with the agent's
    bootstrap interval; None without a sustained phase."""
    sustained_p95_ms: Estimate | None = None
    """The sustained phase's p95 in milliseconds (falls back to the measured p95 when no
    sustained phase ran; see `Cell.flags` "no_sustained_phase")."""
    compute_share: tuple[DeviceShare, ...] = ()
    """The Core ML compute plan's placement, cost-weighted per device (empty when no plan)."""
    compute_ops: int | None = None
    """Total ops in the compute plan (None when no plan)."""
    fallback_ops: int | None = None
    """Ops that fell back (preferred CPU where the ANE could run them, or off the ANE)."""
    numeric: NumericCheck | None = None
    """The numeric check against the numpy reference (None for numpy itself or when not run)."""
    gates: tuple[GateBadge, ...] = ()
    """Stored gate verdicts for this cell."""
    flags: tuple[str, ...] = ()
    """The summary's flags (few_samples_p95, need_more_runs, autocorrelated, thermal_drift ...) plus
    comparison flags (below_floors, methods_disagree, numeric_gate_failed, single_run)."""
    warnings: tuple[str, ...] = ()
    """Conditions that do not change the comparability key but can change the answer (macOS
    build, power source, Low Power Mode, thermal state at start, contention), as sentences."""
    floors_met: bool = True
    """False when the cell is below its sample floors: then the cell is shown with its flags and
    never called faster or slower."""
    comparable: bool = True
    """False when the cell's comparability key differs from its reference's."""
    ratio: Ratio | None = None
    """This cell against its reference for the table's metric (None on the baseline itself)."""
    cost: Cost | None = None
    """The cost view (capex tables and --metric cost)."""
    throughput_per_s: float | None = None
    """Inferences per second at the measured p50 (1000 / p50 ms)."""
    tokens_per_s: float | None = None
    """Tokens per second for token-generating workloads (decoder-step), else None."""
    energy: Energy | None = None
    """Energy figures when the cell was measured with a power reader, else None."""


@dataclass(frozen=True)
class Change:
    """Something that differs between the runs of a table (artifact hashes, versions, OS builds)."""

    what: str
    """What changed, e.g. "artifact mlp", "mlx version", "macOS build on node-a"."""
    before: str | None
    """The value in the first (reference) run; None when absent there."""
    after: str | None
    """The value in the later run; None when absent there."""


@dataclass(frozen=True)
class Recommendation:
    """The capex answer for one workload: the cheapest tier meeting every bucket's budget."""

    workload: str
    tier: str | None
    """The recommended tier (or node name when it has no tier); None when no tier meets."""
    nodes: tuple[str, ...] = ()
    """The nodes of the recommended tier."""
    engine_key: str | None = None
    """The engine config the recommendation is for (the cheapest one that meets the budgets)."""
    cost_per_million_usd: float | None = None
    """Its cost per million inferences in US dollars (summed over buckets: the dearest bucket)."""
    text: str = ""
    """The sentence, e.g. "M2 Pro meets every budget at $0.42 per million" or
    "no tier meets the budget for bucket b8 (best: M4 Max, p95 upper 12.3 ms > 10 ms)"."""
    evidence: str = ""
    """What the recommendation rests on: runs, samples, flags."""
    would_change: str = ""
    """What would change it (e.g. the runner-up's margin, a bucket close to its budget)."""


@dataclass(frozen=True)
class ComparisonTable:
    """A table: columns x rows of cells, plus what a reader must know before reading it."""

    kind: TableKind
    """soc | run_vs_run | coreml_vs_mlx | capex."""
    title: str
    run_ids: tuple[int, ...]
    """The runs the table draws from, in the order given (run vs run: reference first)."""
    baseline: str | None
    """The column key every ratio is against (None when the table has no ratios)."""
    metric: str
    """The metric ratios are computed for: p50 | p95 | cold | drift | share | cost."""
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    cells: tuple[Cell, ...]
    """Every present (row, column) cell; a missing pair means the column has no such cell."""
    min_effect: float = 0.02
    """The minimum effect (fraction) for faster/slower."""
    confidence: float = 0.95
    """Confidence level of every interval in the table."""
    notes: tuple[str, ...] = ()
    """Top-of-table sentences: how to read the table, the method, what was left out."""
    warnings: tuple[str, ...] = ()
    """Top-of-table comparability warnings (differing conditions, tier mismatches)."""
    changes: tuple[Change, ...] = ()
    """What changed between the runs (run vs run)."""
    recommendations: tuple[Recommendation, ...] = ()
    """Capex recommendations, one per workload."""
    related: tuple[ComparisonTable, ...] = ()
    """Further tables shown after this one (e.g. Core ML vs MLX beside the SoC table)."""
    utilisation: float | None = None
    """The utilisation (fraction) the capex payback assumes; None outside capex tables."""
    schema: int = TABLE_MODEL_VERSION
    """The table model version (see the module history)."""

    def cell(self, row: str, column: str) -> Cell | None:
        """The cell at (row key, column key), None when absent."""
        for cell in self.cells:
            if cell.row == row and cell.column == column:
                return cell
        return None

    def cells_in_row(self, row: str) -> tuple[Cell, ...]:
        """The row's cells in column order."""
        order = {c.key: i for i, c in enumerate(self.columns)}
        return tuple(sorted((c for c in self.cells if c.row == row), key=lambda c: order.get(c.column, 0)))

    @property
    def regressions(self) -> tuple[Cell, ...]:
        """Cells whose ratio verdict is "slower" (a run-vs-run regression)."""
        return tuple(c for c in self.cells if c.ratio is not None and c.ratio.verdict == "slower")
