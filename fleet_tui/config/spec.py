"""The sweep spec: a TOML file naming the matrix (workloads x buckets x engine configs x nodes),
the input contract (a p95 budget per bucket), measurement settings, gates and scheduling.

`load_spec(path)` parses and validates it; every problem is a `SpecError` that names the file,
the table and field, and (for TOML syntax, and where the key can be found) the line.

The input contract is frozen by `SweepSpec.contract_hash`: sha256 over the canonical JSON of
every (workload, bucket, input shapes, budget) in the spec, sorted by name, so the hash ignores
key order, formatting and comments, and changes when a shape or a budget changes.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from node_agent.engines import CONFIG_CHOICES, CONFIG_DEFAULTS, precision_of
from node_agent.measure import MeasureSettings

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node


class SpecError(ValueError):
    """A sweep spec problem. The message names the file, the table/field and, if known, the line."""

    def __init__(self, source: str, where: str, message: str, line: int | None = None) -> None:
        location = f"{source}:{line}" if line is not None else source
        text = f"{location}: {where}: {message}" if where else f"{location}: {message}"
        super().__init__(text)
        self.source = source
        self.where = where
        self.line = line


# --- Engine configurations -------------------------------------------------------------------

ENGINE_OPTIONS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = CONFIG_CHOICES
"""Engine -> option -> allowed values (docs/DESIGN.md, "Engines and cells"); the agent's own table."""

ENGINE_DEFAULTS: Final[Mapping[str, Mapping[str, str]]] = CONFIG_DEFAULTS
"""Values filled in for options an engine config leaves out (so every key is complete)."""


@dataclass(frozen=True)
class EngineConfig:
    """One engine configuration, e.g. mlx with device=cpu, dtype=fp32."""

    engine: str
    options: tuple[tuple[str, str], ...]
    """(option, value) pairs in `ENGINE_OPTIONS` order; complete (defaults filled in)."""

    @property
    def config(self) -> dict[str, str]:
        """The options as the agent job's `config` dict."""
        return dict(self.options)

    @property
    def key(self) -> str:
        """Stable short name: engine and option values joined by ':' ("coreml:all:fp16")."""
        return ":".join([self.engine, *(value for _, value in self.options)])

    @property
    def precision(self) -> str:
        """The numeric precision this config is judged in (`node_agent.engines.precision_of`)."""
        return precision_of(self.engine, self.config)


# --- The spec ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketSpec:
    """One bucket of the input contract: its input shapes (from the workload) and p95 budget."""

    name: str
    budget_ms: float
    inputs: Mapping[str, Any]
    """Input name -> shape, as the workload defines the bucket (JSON-normalised: lists)."""


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    buckets: tuple[BucketSpec, ...]


@dataclass(frozen=True)
class TargetSpec:
    """Which inventory nodes the sweep runs on: named nodes plus nodes carrying any listed tag.

    Both empty means every node.
    """

    nodes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


_AGENT_DEFAULTS: Final = MeasureSettings()


@dataclass(frozen=True)
class MeasureSpec:
    """Measurement settings (docs/MEASUREMENT.md explains each).

    The method's defaults are the agent's own (`MeasureSettings`), so a spec that leaves a field out
    measures exactly as a job that leaves it out. Only the sustained phase (15 min, the runbook's)
    and the cooldown between cells are the spec's: a bare job has neither.
    """

    runs: int = _AGENT_DEFAULTS.runs
    warmup_min: int = _AGENT_DEFAULTS.warmup_min
    warmup_max: int = _AGENT_DEFAULTS.warmup_max
    min_samples: int = _AGENT_DEFAULTS.min_samples
    min_duration_s: float = _AGENT_DEFAULTS.min_duration_s
    max_duration_s: float = _AGENT_DEFAULTS.max_duration_s
    max_samples: int = _AGENT_DEFAULTS.max_samples
    epsilon: float = _AGENT_DEFAULTS.epsilon
    check_every: int = _AGENT_DEFAULTS.check_every
    p99: bool = _AGENT_DEFAULTS.p99
    sustained_minutes: float = 15.0
    cooldown_s: float = 5.0
    wait_nominal_s: float = _AGENT_DEFAULTS.wait_nominal_s
    numeric: bool = _AGENT_DEFAULTS.numeric
    energy: str = _AGENT_DEFAULTS.energy
    energy_interval_ms: int = _AGENT_DEFAULTS.energy_interval_ms
    kwh_usd: float | None = None
    """Electricity price for the cost view (an inventory node's own kwh_usd wins); not sent to nodes."""

    def to_job(self) -> dict[str, Any]:
        """The `measure` object of an agent job: the same fields, sustained time in seconds."""
        job = dataclasses.asdict(self)
        job["sustained_s"] = job.pop("sustained_minutes") * 60.0
        job.pop("kwh_usd")
        return job


@dataclass(frozen=True)
class GateSpec:
    """Gate thresholds (docs/DESIGN.md, "The runbook"); None turns a ratio gate off (`= false` in TOML)."""

    coreml_vs_mlx_p95: float | None = 1.25
    sustained_vs_burst: float | None = 1.2
    budget: bool = True
    numeric: bool = True


@dataclass(frozen=True)
class SchedulerSpec:
    on_busy: Literal["wait", "skip"] = "wait"
    """A node whose agent lock is held: wait for it (up to busy_wait_s) or skip the node."""
    busy_wait_s: float = 600.0
    max_attempts: int = 3
    """Attempts per cell, counting the first; a failed cell with attempts left is re-run."""
    retry_backoff_s: float = 5.0


@dataclass(frozen=True)
class SweepSpec:
    name: str
    workloads: tuple[WorkloadSpec, ...]
    engines: tuple[EngineConfig, ...]
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    gates: GateSpec = field(default_factory=GateSpec)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    targets: TargetSpec = field(default_factory=TargetSpec)
    description: str = ""
    source: str = "<string>"
    text: str = ""
    """The TOML text as written (stored with the run)."""

    def contract(self) -> dict[str, Any]:
        """The input contract as canonical data: workloads and buckets sorted by name."""
        return {
            "workloads": [
                {
                    "name": w.name,
                    "buckets": [
                        {"name": b.name, "inputs": _jsonable(b.inputs), "budget_ms": float(b.budget_ms)}
                        for b in sorted(w.buckets, key=lambda b: b.name)
                    ],
                }
                for w in sorted(self.workloads, key=lambda w: w.name)
            ]
        }

    @property
    def contract_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of `contract()`."""
        canonical = json.dumps(self.contract(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def budget_ms(self, workload: str, bucket: str) -> float:
        """The budget of one bucket; KeyError if the spec does not list it."""
        return self.budgets()[(workload, bucket)]

    def budgets(self) -> dict[tuple[str, str], float]:
        """(workload, bucket) -> p95 budget in ms."""
        return {(w.name, b.name): b.budget_ms for w in self.workloads for b in w.buckets}

    def to_json(self) -> dict[str, Any]:
        """Everything the spec says, as plain JSON data (stored with the run)."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "contract_hash": self.contract_hash,
            "targets": {"nodes": list(self.targets.nodes), "tags": list(self.targets.tags)},
            "workloads": self.contract()["workloads"],
            "engines": [{"engine": e.engine, "key": e.key, "config": e.config} for e in self.engines],
            "measure": self.measure.to_job()
            | {"sustained_minutes": self.measure.sustained_minutes, "kwh_usd": self.measure.kwh_usd},
            "gates": {
                "coreml_vs_mlx_p95": self.gates.coreml_vs_mlx_p95,
                "sustained_vs_burst": self.gates.sustained_vs_burst,
                "budget": self.gates.budget,
                "numeric": self.gates.numeric,
            },
            "scheduler": {
                "on_busy": self.scheduler.on_busy,
                "busy_wait_s": self.scheduler.busy_wait_s,
                "max_attempts": self.scheduler.max_attempts,
                "retry_backoff_s": self.scheduler.retry_backoff_s,
            },
        }

    def select_nodes(self, nodes: Sequence[Node]) -> list[Node]:
        """The inventory nodes this sweep targets, in inventory order.

        A node is selected when `targets.nodes` names it or it carries a tag in `targets.tags`;
        with both empty, every node. A name or tag that matches nothing is a SpecError (a typo
        must not silently shrink the sweep).
        """
        if not self.targets.nodes and not self.targets.tags:
            return list(nodes)
        known = [n.name for n in nodes]
        for name in self.targets.nodes:
            if name not in known:
                raise SpecError(
                    self.source,
                    "[targets] nodes",
                    f"node {name!r} is not in the inventory{_suggest(name, known)} (known: {_list(known)})",
                    _line_of(self.text, "nodes"),
                )
        all_tags = sorted({t for n in nodes for t in n.tags})
        for tag in self.targets.tags:
            if tag not in all_tags:
                raise SpecError(
                    self.source,
                    "[targets] tags",
                    f"no node carries tag {tag!r}{_suggest(tag, all_tags)} (tags in the inventory: "
                    f"{_list(all_tags)})",
                    _line_of(self.text, "tags"),
                )
        wanted_names, wanted_tags = set(self.targets.nodes), set(self.targets.tags)
        return [n for n in nodes if n.name in wanted_names or wanted_tags & set(n.tags)]


# --- Parsing -----------------------------------------------------------------------------------

_TOP_KEYS = ("name", "description", "targets", "workload", "engines", "measure", "gates", "scheduler")
_TARGET_KEYS = ("nodes", "tags")
_WORKLOAD_KEYS = ("name", "bucket")
_BUCKET_KEYS = ("name", "budget_ms")
_MEASURE_INT = (
    "runs",
    "warmup_min",
    "warmup_max",
    "min_samples",
    "max_samples",
    "check_every",
    "energy_interval_ms",
)
_MEASURE_FLOAT = (
    "min_duration_s",
    "max_duration_s",
    "epsilon",
    "sustained_minutes",
    "cooldown_s",
    "wait_nominal_s",
)
_MEASURE_BOOL = ("p99", "numeric")
_MEASURE_STR = ("energy",)
_MEASURE_OPTIONAL_FLOAT = ("kwh_usd",)

MAXIMUMS: Final[dict[str, float]] = {
    # Upper bounds of every number a spec may give (a value above is a spec error): far above any
    # real use, low enough that no product of them overflows a float, a SQLite integer or the
    # agent's memory (a sample is 8 bytes: 10 M samples are 80 MB per run).
    "budget_ms": 3_600_000.0,  # an hour per inference
    "runs": 100,
    "warmup_min": 100_000,
    "warmup_max": 100_000,
    "min_samples": 10_000_000,
    "max_samples": 10_000_000,
    "check_every": 1_000_000,
    "min_duration_s": 86_400.0,
    "max_duration_s": 86_400.0,
    "sustained_minutes": 1_440.0,
    "cooldown_s": 3_600.0,
    "wait_nominal_s": 3_600.0,
    "energy_interval_ms": 60_000,
    "kwh_usd": 1_000.0,
    "busy_wait_s": 86_400.0,
    "max_attempts": 100,
    "retry_backoff_s": 3_600.0,
    "coreml_vs_mlx_p95": 1_000.0,
    "sustained_vs_burst": 1_000.0,
}
MAX_POOLED_SAMPLES: Final = 20_000_000
"""runs x max_samples: the samples one cell may pool across its runs (8 bytes each: 160 MB in the
agent, and the most the controller stores for the cell)."""
_GATE_KEYS = ("coreml_vs_mlx_p95", "sustained_vs_burst", "budget", "numeric")
_SCHEDULER_KEYS = ("on_busy", "busy_wait_s", "max_attempts", "retry_backoff_s")


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file. Raises SpecError (also for an unreadable file)."""
    from fleet_tui.config.files import ConfigFileError, read_regular_text

    path = Path(path)
    try:
        text = read_regular_text(path)
    except ConfigFileError as exc:
        raise SpecError(str(path), "", f"cannot read the spec: {exc}") from None
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "<string>") -> SweepSpec:
    """Validate a sweep spec given as TOML text; `source` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib puts "(at line N, column M)" in the message; lift the line out for the prefix.
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        raise SpecError(source, "TOML syntax", message, line) from None
    return _Parser(source, text).spec(data)


class _Parser:
    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text

    def error(self, where: str, message: str, key: str | None = None, value: str | None = None) -> SpecError:
        line = _line_of(self.text, key, value) if key else None
        return SpecError(self.source, where, message, line)

    def check_keys(self, table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(
                    where,
                    f"unknown key {key!r}{_suggest(key, allowed)} (allowed: {', '.join(allowed)})",
                    key,
                )

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, f"must be a table, not {_type_name(value)}")
        return value

    def string(self, value: Any, where: str, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(where, f"{key} must be a non-empty string, not {_shown(value)}", key)
        return value

    def number(self, value: Any, where: str, key: str, *, minimum: float, strict: bool = False) -> float:
        # bool is an int subclass in Python; `runs = true` is a type error, not 1.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(where, f"{key} must be a number, not {_shown(value)}", key)
        if value < minimum or (strict and value == minimum):
            op = ">" if strict else ">="
            raise self.error(where, f"{key} must be {op} {minimum:g}, got {value!r}", key)
        self._at_most(value, where, key)
        return float(value)

    def _at_most(self, value: float, where: str, key: str) -> None:
        maximum = MAXIMUMS.get(key)
        if maximum is not None and value > maximum:
            raise self.error(where, f"{key} must be <= {maximum:g}, got {value!r}", key)

    def integer(self, value: Any, where: str, key: str, *, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(where, f"{key} must be an integer, not {_shown(value)}", key)
        if value < minimum:
            raise self.error(where, f"{key} must be >= {minimum}, got {value}", key)
        self._at_most(value, where, key)
        return value

    def boolean(self, value: Any, where: str, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(where, f"{key} must be true or false, not {_shown(value)}", key)
        return value

    def strings(self, value: Any, where: str, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(where, f"{key} must be a list of non-empty strings, not {_shown(value)}", key)
        return tuple(value)

    # -- tables --

    def spec(self, data: dict[str, Any]) -> SweepSpec:
        self.check_keys(data, _TOP_KEYS, "top level")
        name = self.string(data.get("name", Path(self.source).stem), "top level", "name")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.error("top level", f"description must be a string, not {_shown(description)}")
        spec = SweepSpec(
            name=name,
            description=description,
            targets=self.targets(data.get("targets", {})),
            workloads=self.workloads(data.get("workload")),
            engines=self.engines(data.get("engines")),
            measure=self.measure(data.get("measure", {})),
            gates=self.gates(data.get("gates", {})),
            scheduler=self.scheduler(data.get("scheduler", {})),
            source=self.source,
            text=self.text,
        )
        return spec

    def targets(self, value: Any) -> TargetSpec:
        table = self.table(value, "[targets]")
        self.check_keys(table, _TARGET_KEYS, "[targets]")
        return TargetSpec(
            nodes=self.strings(table.get("nodes", []), "[targets]", "nodes"),
            tags=self.strings(table.get("tags", []), "[targets]", "tags"),
        )

    def workloads(self, value: Any) -> tuple[WorkloadSpec, ...]:
        # Every built-in workload is valid in a spec: whether a node can run it (minilm-l6 needs its
        # weights package) is the plan's business, which marks such cells unsupported.
        from node_agent.workloads import WORKLOAD_NAMES, workload_definition

        if value is None or value == []:
            raise self.error("[[workload]]", "empty matrix: the spec lists no [[workload]] tables")
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error("[[workload]]", "must be an array of tables ([[workload]] ...)", "workload")
        known = sorted(WORKLOAD_NAMES)
        result: list[WorkloadSpec] = []
        seen: set[str] = set()
        for index, table in enumerate(value):
            where = f"[[workload]] #{index + 1}"
            self.check_keys(table, _WORKLOAD_KEYS, where)
            name = self.string(table.get("name"), where, "name")
            where = f"[[workload]] {name!r}"
            if name in seen:
                raise self.error(where, f"workload {name!r} is listed twice", "name", name)
            seen.add(name)
            if name not in known:
                raise self.error(
                    where,
                    f"unknown workload {name!r}{_suggest(name, known)} (known: {_list(known)})",
                    "name",
                    name,
                )
            workload = workload_definition(name)
            result.append(WorkloadSpec(name, self.buckets(table.get("bucket"), where, workload)))
        return tuple(result)

    def buckets(self, value: Any, where: str, workload: Any) -> tuple[BucketSpec, ...]:
        defined = {b.name: b for b in workload.buckets}
        if value is None or value == []:
            raise self.error(
                where,
                f"lists no buckets; add [[workload.bucket]] tables with name and budget_ms "
                f"(buckets of {workload.name!r}: {_list(defined)})",
            )
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.error(where, "bucket must be an array of tables ([[workload.bucket]])", "bucket")
        result: list[BucketSpec] = []
        seen: set[str] = set()
        for index, table in enumerate(value):
            bucket_where = f"{where} [[workload.bucket]] #{index + 1}"
            self.check_keys(table, _BUCKET_KEYS, bucket_where)
            name = self.string(table.get("name"), bucket_where, "name")
            bucket_where = f"{where} bucket {name!r}"
            if name not in defined:
                raise self.error(
                    bucket_where,
                    f"workload {workload.name!r} has no bucket {name!r}{_suggest(name, list(defined))} "
                    f"(its buckets: {_list(defined)})",
                    "name",
                    name,
                )
            if name in seen:
                raise self.error(bucket_where, f"bucket {name!r} is listed twice", "name", name)
            seen.add(name)
            if "budget_ms" not in table:
                # The budget is the input contract; it is never taken silently from the workload.
                raise self.error(
                    bucket_where,
                    f"budget_ms is missing: every bucket needs its p95 budget in ms (the input "
                    f"contract); the workload suggests {defined[name].budget_ms:g}",
                    "name",
                    name,
                )
            budget = self.number(table["budget_ms"], bucket_where, "budget_ms", minimum=0.0, strict=True)
            result.append(BucketSpec(name, budget, _jsonable(dict(defined[name].inputs))))
        return tuple(result)

    def engines(self, value: Any) -> tuple[EngineConfig, ...]:
        if value is None:
            raise self.error("[engines]", "empty matrix: the spec has no [engines] table")
        table = self.table(value, "[engines]")
        self.check_keys(table, tuple(ENGINE_OPTIONS), "[engines]")
        result: list[EngineConfig] = []
        for engine, configs in table.items():
            where = f"[engines] {engine}"
            if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
                raise self.error(
                    where,
                    f"must be a list of inline tables, e.g. {engine} = [{_example(engine)}], "
                    f"not {_shown(configs)}",
                    engine,
                )
            for index, config in enumerate(configs):
                entry = self.engine_config(engine, config, f"{where} #{index + 1}")
                if entry in result:
                    raise self.error(where, f"config {entry.key!r} is listed twice", engine)
                result.append(entry)
        if not result:
            raise self.error("[engines]", "empty matrix: no engine configuration is listed")
        return tuple(result)

    def engine_config(self, engine: str, config: Mapping[str, Any], where: str) -> EngineConfig:
        allowed = ENGINE_OPTIONS[engine]
        self.check_keys(config, tuple(allowed), where)
        options: list[tuple[str, str]] = []
        for option, values in allowed.items():
            value = config.get(option, ENGINE_DEFAULTS[engine][option])
            if value not in values:
                raise self.error(
                    where,
                    f"{option} = {_shown(value)} is not valid for {engine} (one of: {', '.join(values)})",
                    option,
                )
            options.append((option, value))
        return EngineConfig(engine, tuple(options))

    def measure(self, value: Any) -> MeasureSpec:
        where = "[measure]"
        table = self.table(value, where)
        self.check_keys(
            table,
            _MEASURE_INT + _MEASURE_FLOAT + _MEASURE_BOOL + _MEASURE_STR + _MEASURE_OPTIONAL_FLOAT,
            where,
        )
        defaults = MeasureSpec()
        values: dict[str, Any] = {}
        minimum_int = {
            "runs": 1,
            "warmup_min": 1,
            "warmup_max": 1,
            "min_samples": 1,
            "energy_interval_ms": 50,
        }
        for key in _MEASURE_INT:
            if key in table:
                values[key] = self.integer(table[key], where, key, minimum=minimum_int.get(key, 1))
        for key in _MEASURE_FLOAT:
            if key in table:
                strict = key in ("epsilon", "max_duration_s")
                values[key] = self.number(table[key], where, key, minimum=0.0, strict=strict)
        for key in _MEASURE_BOOL:
            if key in table:
                values[key] = self.boolean(table[key], where, key)
        if "energy" in table:
            values["energy"] = self.energy_choice(table["energy"], where)
        if "kwh_usd" in table:
            values["kwh_usd"] = self.number(table["kwh_usd"], where, "kwh_usd", minimum=0.0)
        measure = MeasureSpec(**{**defaults.__dict__, **values})
        if measure.epsilon >= 1:
            raise self.error(
                where,
                f"epsilon is a relative CI half-width, 0 < epsilon < 1, got {measure.epsilon}",
                "epsilon",
            )
        for low, high in (
            ("warmup_min", "warmup_max"),
            ("min_samples", "max_samples"),
            ("min_duration_s", "max_duration_s"),
        ):
            if getattr(measure, low) > getattr(measure, high):
                raise self.error(
                    where,
                    f"{low} ({getattr(measure, low):g}) is above {high} ({getattr(measure, high):g})",
                    low if low in table else high,
                )
        pooled = measure.runs * measure.max_samples
        if pooled > MAX_POOLED_SAMPLES:
            raise self.error(
                where,
                f"runs x max_samples ({measure.runs} x {measure.max_samples} = {pooled}) is above "
                f"{MAX_POOLED_SAMPLES}, the samples one cell may hold",
                "max_samples" if "max_samples" in table else "runs",
            )
        return self.agent_accepts(measure, table)

    def energy_choice(self, value: Any, where: str) -> str:
        from node_agent.energy.auto import ENERGY_CHOICES

        if not isinstance(value, str) or value not in ENERGY_CHOICES:
            shown = _shown(value)
            hint = _suggest(value, ENERGY_CHOICES) if isinstance(value, str) else ""
            raise self.error(
                where,
                f"energy must be one of {', '.join(map(repr, ENERGY_CHOICES))}, not {shown}{hint}",
                "energy",
            )
        return value

    def agent_accepts(self, measure: MeasureSpec, table: Mapping[str, Any]) -> MeasureSpec:
        """The agent validates the job's `measure` again; a spec it would refuse fails here, at
        once and naming the field, not as every cell `failed` with bad_job on every node."""
        from node_agent.measure import MeasureSettings, SettingsError
        from node_agent.stats import MIN_SAMPLES_P99

        where = "[measure]"
        if measure.p99 and measure.max_samples < MIN_SAMPLES_P99:
            raise self.error(
                where,
                f"max_samples ({measure.max_samples}) is below {MIN_SAMPLES_P99}, the sample floor "
                f"p99 = true needs (docs/MEASUREMENT.md, 'Floors')",
                "max_samples" if "max_samples" in table else "p99",
            )
        try:
            MeasureSettings.from_dict(measure.to_job())
        except SettingsError as exc:
            key = "sustained_minutes" if exc.field == "sustained_s" else exc.field
            raise self.error(
                where, str(exc).removeprefix("measure."), key if key in table else None
            ) from None
        return measure

    def gates(self, value: Any) -> GateSpec:
        where = "[gates]"
        table = self.table(value, where)
        self.check_keys(table, _GATE_KEYS, where)
        defaults = GateSpec()
        ratios: dict[str, float | None] = {}
        for key in ("coreml_vs_mlx_p95", "sustained_vs_burst"):
            raw = table.get(key, getattr(defaults, key))
            if raw is False or raw is None:
                ratios[key] = None
            elif raw is True:
                raise self.error(
                    where, f"{key} is a ratio (e.g. 1.25) or false to turn it off, not true", key
                )
            else:
                ratios[key] = self.number(raw, where, key, minimum=0.0, strict=True)
        return GateSpec(
            coreml_vs_mlx_p95=ratios["coreml_vs_mlx_p95"],
            sustained_vs_burst=ratios["sustained_vs_burst"],
            budget=self.boolean(table.get("budget", defaults.budget), where, "budget"),
            numeric=self.boolean(table.get("numeric", defaults.numeric), where, "numeric"),
        )

    def scheduler(self, value: Any) -> SchedulerSpec:
        where = "[scheduler]"
        table = self.table(value, where)
        self.check_keys(table, _SCHEDULER_KEYS, where)
        defaults = SchedulerSpec()
        on_busy = table.get("on_busy", defaults.on_busy)
        if on_busy not in ("wait", "skip"):
            raise self.error(where, f'on_busy must be "wait" or "skip", not {_shown(on_busy)}', "on_busy")
        return SchedulerSpec(
            on_busy=on_busy,
            busy_wait_s=self.number(
                table.get("busy_wait_s", defaults.busy_wait_s), where, "busy_wait_s", minimum=0.0
            ),
            max_attempts=self.integer(
                table.get("max_attempts", defaults.max_attempts), where, "max_attempts", minimum=1
            ),
            retry_backoff_s=self.number(
                table.get("retry_backoff_s", defaults.retry_backoff_s), where, "retry_backoff_s", minimum=0.0
            ),
        )


# --- helpers -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Tuples to lists, mappings to str-keyed dicts, recursively: the canonical JSON shape."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _line_of(text: str, key: str | None, value: str | None = None) -> int | None:
    """1-based line of the first `key =` (or `key = "value"`) in the TOML text, best effort."""
    if not key or not text:
        return None
    tail = r"\s*=" if value is None else r"\s*=\s*[\"']" + re.escape(value) + r"[\"']"
    pattern = re.compile(r"(^\s*|[{,]\s*)" + re.escape(key) + tail)
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.search(line.split("#", 1)[0]):
            return number
    return None


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _list(items: Iterable[str]) -> str:
    items = list(items)
    return ", ".join(items) if items else "none"


def _type_name(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{_type_name(value)} {text if len(text) <= 40 else text[:37] + '...'}"


def _example(engine: str) -> str:
    return "{" + ", ".join(f'{k} = "{v}"' for k, v in ENGINE_DEFAULTS[engine].items()) + "}"
