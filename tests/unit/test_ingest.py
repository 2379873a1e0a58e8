"""The controller's ingest of a job's events: decode, checks against the job and the spec, store.

The fuzz tests drive the real path (`decode_line`, then `SweepScheduler.ingest` into a real
SQLite store) with generated lines: a known-bad line is always the node's protocol error and
writes nothing; any other line is either stored or refused, never an escaping exception.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_fixtures import spec_toml

from fleet_tui.config.inventory import Node
from fleet_tui.config.spec import SweepSpec, parse_spec
from fleet_tui.fleet.agent import decode_line
from fleet_tui.fleet.transport.base import NodeError, NodeErrorKind
from fleet_tui.store import Store
from fleet_tui.sweep.events import MAX_MESSAGES, BadEvent, EventOrder, Progress, SampleBudget
from fleet_tui.sweep.plan import build_plan
from fleet_tui.sweep.scheduler import (
    LIVENESS_FLOOR_ENV,
    LIVENESS_FLOOR_S,
    Job,
    JobChecks,
    NodeReport,
    SweepScheduler,
    job_bounds,
    liveness_floor,
)
from node_agent.protocol import SCHEMA

MEASURE = """
runs = 2
warmup_min = 1
warmup_max = 5
min_samples = 30
min_duration_s = 0.1
max_duration_s = 1.0
max_samples = 3000
sustained_minutes = 0
cooldown_s = 0
wait_nominal_s = 0
"""
SPEC = spec_toml("ingest", workloads=(("mlp", (("b1", 5.0), ("b8", 5.0))),), sections={"measure": MEASURE})
NODE = Node(name="fuzzed", host="localhost", transport="local", source="test")


def line(event_type: str, **fields: Any) -> str:
    return json.dumps({"schema": SCHEMA, "type": event_type, **fields})


class Harness:
    """A stored run of two cells on one node, and a scheduler to ingest into it."""

    def __init__(self, path: Path) -> None:
        self.spec: SweepSpec = parse_spec(SPEC)
        self.path = path
        self.store = Store.open(path)
        self.run_id = self.store.create_run(self.spec)
        self.store.add_cells(self.run_id, build_plan(self.spec, [NODE]).cells)
        self.scheduler = SweepScheduler(
            self.store, self.run_id, self.spec, [NODE], {}, cast(Any, None), Progress()
        )
        self.lines = 0
        self.rejected = 0
        self.last_error: NodeError | None = None
        self.reader = sqlite3.connect(path)

    @property
    def cell_ids(self) -> list[str]:
        return [str(c.id) for c in self.store.cells_for(self.run_id)]

    def rows(self) -> tuple[Any, ...]:
        """What the store holds (a second connection: it sees committed rows only)."""
        return tuple(
            self.reader.execute(
                "SELECT (SELECT COUNT(*) FROM samples), (SELECT COUNT(*) FROM thermal), "
                "(SELECT COUNT(*) FROM results), (SELECT group_concat(state || attempts) FROM cells)"
            ).fetchone()
        )

    def feed(self, lines: list[str]) -> int | None:
        """Ingest one job's lines; the index of the line refused (None: all taken).

        Asserts that only a protocol error escapes and that a refused line wrote nothing."""
        cells = self.store.cells_for(self.run_id)
        self.scheduler.adopt(cells)
        job = Job(cells={str(c.id): c for c in cells}, started=time.perf_counter())
        checks = JobChecks(EventOrder(job.cells), SampleBudget(self.spec.measure))
        report = NodeReport(NODE.name)
        for index, text in enumerate(lines):
            self.lines += 1
            before = self.rows()
            try:
                if not text.strip():
                    continue  # blank lines are skipped, as agent_events does
                self.scheduler.ingest(NODE, job, checks, decode_line(text, NODE.name), report)
            except NodeError as exc:
                assert exc.kind is NodeErrorKind.PROTOCOL_ERROR, exc
                assert exc.node == NODE.name
                assert self.rows() == before, f"a refused line wrote to the store: {text[:200]!r}"
                self.rejected += 1
                self.last_error = exc
                # As the scheduler does with a lost job: its cells without a result are lost.
                self.scheduler.close_job(NODE, job, "lost", f"{exc.kind}: {exc.message}")
                return index
        self.scheduler.end_job(NODE, job, report)  # the stream ended: what the node said is kept
        return None

    def close(self) -> None:
        self.reader.close()
        self.store.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path / "fleet.db")
    yield h
    h.close()


def job_start(cell_id: str) -> list[str]:
    return [line("hello"), line("cell_started", cell_id=cell_id)]


# --- hand-picked cases ---------------------------------------------------------------------------


def test_a_normal_job_is_stored(harness: Harness) -> None:
    first, _ = harness.cell_ids
    samples = {"cell_id": first, "run": 0, "phase": "measure", "ns": [1000, 1100], "t_ns": [1, 2]}
    stream = [
        *job_start(first),
        line("samples", **samples),
        line("thermal", cell_id=first, run=0, t_ns=5, state={"thermal_pressure": "nominal"}),
        line("cell_result", cell_id=first, status="ok", summary={"p50": 1000.0, "n": 2}),
        line("done", ok=True, exit_code=0),
    ]
    assert harness.feed(stream) is None
    assert harness.rows()[:3] == (1, 1, 1)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ('{"schema": 1, "type": "facts", "facts": ' + "[" * 1000 + "]" * 1000 + "}", "nest"),
        (line("samples", cell_id="{c}", run=2**63, phase="measure", ns=[1]), "samples.run"),
        ('{"schema": 1, "type": "thermal", "cell_id": "{c}", "t_ns": 1e400, "state": {}}', "out of range"),
        (line("samples", cell_id="{c}", run=0, phase="measure", ns=[2**64]), "samples.ns"),
        ('{"schema": 1, "type": ["samples"]}', "unknown event type"),
        (line("samples", cell_id="{c}", run=0, phase="measure", ns=[-1, -5, -(10**18)]), "samples.ns"),
        (line("samples", cell_id="{c}", run=True, phase="measure", ns=[1]), "samples.run"),
        (line("samples", cell_id="{c}", run="3", phase="measure", ns=[1]), "samples.run"),
        (line("samples", cell_id="{c}", run=1.5, phase="measure", ns=[1]), "samples.run"),
        (line("samples", cell_id="{c}", run=-7, phase="measure", ns=[1]), "samples.run"),
        (line("samples", cell_id="{c}", run=2, phase="measure", ns=[1]), "runs = 2"),
        (line("samples", cell_id="{c}", run=0, phase="measure", ns=[1, 2], t_ns=[1]), "timestamps"),
        (line("samples", cell_id="{c}", run=0, phase="measure", ns=[1000] * 4000), "max_samples"),
        (line("samples", cell_id="{c}", run=0, phase="measure", ns=[10**9] * 20), "max_duration_s"),
        (line("samples", cell_id="{c}", run=0, phase="sustained", ns=[10**9] * 20), "sustained_minutes"),
        (line("cell_result", cell_id="{c}", status="ok", summary={"p95": -1.0}), "summary.p95"),
        (line("cell_result", cell_id="{c}", status="ok", summary={"p50": 10**400}), "int64"),
        (line("hello"), "second hello"),
        (line("cell_result", cell_id="{c}", status="failed", reason="\ud800"), "lone surrogate"),
        (line("error", code="x", message="\udfff"), "lone surrogate"),
    ],
    ids=lambda value: str(value)[:40],
)
def test_each_bad_line_is_the_nodes_protocol_error_and_stores_nothing(
    harness: Harness, bad: str, why: str
) -> None:
    first, _ = harness.cell_ids
    assert harness.feed([*job_start(first), bad.replace("{c}", first)]) == 2
    assert harness.last_error is not None and why in harness.last_error.message


def test_samples_after_the_cells_result_are_refused(harness: Harness) -> None:
    first, _ = harness.cell_ids
    stream = [
        *job_start(first),
        line("cell_result", cell_id=first, status="ok", summary={}),
        line("samples", cell_id=first, run=0, phase="measure", ns=[1]),
    ]
    assert harness.feed(stream) == 3


@pytest.mark.parametrize(
    "stream",
    [
        [line("done", ok=True, exit_code=0)],
        [line("busy", holder={})],
        [line("facts", facts={})],
        [line("cell_result", cell_id="{c}", status="ok")],
    ],
)
def test_a_stream_without_hello_is_refused(harness: Harness, stream: list[str]) -> None:
    first, _ = harness.cell_ids
    assert harness.feed([s.replace("{c}", first) for s in stream]) == 0


def test_a_huge_unknown_cell_id_is_refused_with_a_short_reason(harness: Harness) -> None:
    first, _ = harness.cell_ids
    assert harness.feed([*job_start(first), line("cell_started", cell_id="x" * 1_000_000)]) == 2
    assert harness.last_error is not None and len(harness.last_error.message) < 500


def test_a_tampered_agent_may_say_why_before_hello(harness: Harness) -> None:
    stream = [line("error", code="tampered", message="sha mismatch"), line("done", ok=False, exit_code=3)]
    assert harness.feed(stream) is None


def test_the_sample_budget_allows_what_the_spec_allows() -> None:
    budget = SampleBudget(parse_spec(SPEC).measure)
    for phase, count in (("warmup", 45), ("measure", 3000)):
        for run in (0, 1):
            budget.check(
                {"type": "samples", "cell_id": "7", "run": run, "phase": phase, "ns": [300_000] * count}
            )
    with pytest.raises(BadEvent, match="max_samples"):
        budget.check({"type": "samples", "cell_id": "7", "run": 0, "phase": "measure", "ns": [1] * 400})


def test_a_job_may_send_a_bounded_number_of_warnings_and_errors(harness: Harness) -> None:
    first, _ = harness.cell_ids
    chatter = [line("warning", code="w", message="m")] * MAX_MESSAGES
    assert (
        harness.feed([*job_start(first), *chatter, line("error", code="e", message="m")]) == 2 + MAX_MESSAGES
    )


def test_job_bounds_follow_the_spec_and_the_floor() -> None:
    spec = parse_spec(SPEC)
    cells = build_plan(spec, [NODE]).cells
    rows = [type("Row", (), {"workload": c.workload, "bucket": c.bucket})() for c in cells]
    bounds = job_bounds(spec, cast(Any, rows), floor_s=2.0)
    # silence: floor + max_duration_s + 10 x the 5 ms budget; deadline: floor + 2 x 2 cells x 2 runs x 2.05 s
    assert bounds.idle_s == pytest.approx(2.0 + 1.0 + 0.05)
    assert bounds.deadline_s == pytest.approx(2.0 + 2 * 2 * 2 * (2 * 1.0 + 0.05))


@pytest.mark.parametrize(
    ("value", "floor", "warned"),
    [
        ("", LIVENESS_FLOOR_S, False),
        ("3", 3.0, False),
        ("-1", LIVENESS_FLOOR_S, True),
        ("nan", LIVENESS_FLOOR_S, True),
        ("x", LIVENESS_FLOOR_S, True),
    ],
)
def test_the_liveness_floor_comes_from_the_environment(value: str, floor: float, warned: bool) -> None:
    got, warning = liveness_floor({LIVENESS_FLOOR_ENV: value})
    assert got == floor
    assert (warning is not None) == warned
    if warning:
        assert LIVENESS_FLOOR_ENV in warning


# --- fuzz ----------------------------------------------------------------------------------------

INT64 = 2**63
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    # Lone surrogates too: JSON can spell them (\ud800), UTF-8 and so the store cannot.
    st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=20),
)
hostile_text = st.one_of(
    st.text(st.characters(categories=["Cs", "Cc", "Cf", "Zl"]), min_size=1, max_size=8),
    st.sampled_from(["\x1b[2J\x1b]0;pwned\x07", "\ud800", "a\x00b", "x" * 100_000]),
)
"""Strings a node may send where text belongs: surrogates, control and format characters, NUL,
escape sequences, 100 kB."""
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
TEMPLATES: dict[str, dict[str, Any]] = {
    "samples": {"cell_id": "{c}", "run": 0, "phase": "measure", "ns": [1000, 1200], "t_ns": [1, 2]},
    "thermal": {"cell_id": "{c}", "run": 0, "t_ns": 5, "state": {"thermal_pressure": "nominal"}},
    "cell_result": {"cell_id": "{c}", "status": "ok", "reason": None, "summary": {"p50": 1.0, "n": 2}},
    "progress": {"cell_id": "{c}", "run": 0, "phase": "measure", "done": 1, "total": 30},
    "warning": {"code": "x", "message": "m"},
    "error": {"code": "x", "message": "m"},
    "done": {"ok": True, "exit_code": 0},
}


def _fill(value: Any, cell_id: str) -> Any:
    if value == "{c}":
        return cell_id
    if isinstance(value, dict):
        return {k: _fill(v, cell_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, cell_id) for v in value]
    return value


@st.composite
def mutated_line(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A well-formed event with one field replaced, removed or added (the outcome is open)."""
    kind = draw(st.sampled_from(sorted(TEMPLATES)))
    fields = dict(TEMPLATES[kind])
    action = draw(st.sampled_from(["replace", "text", "remove", "add", "keep"]))
    names = sorted(fields)
    if action == "replace" and names:
        fields[draw(st.sampled_from(names))] = draw(json_values)
    elif action == "text" and names:
        fields[draw(st.sampled_from(names))] = draw(hostile_text)
    elif action == "remove" and names:
        fields.pop(draw(st.sampled_from(names)))
    elif action == "add":
        fields[draw(st.text(max_size=8))] = draw(json_values)
    return kind, fields


BAD_NUMBER_TEXT = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", str(INT64), str(-INT64 - 1), "9" * 5000]


@st.composite
def bad_line(draw: st.DrawFn) -> str:
    """A line that must be refused, whatever else it says (placeholders: {c} = this job's cell)."""
    family = draw(
        st.sampled_from(
            ["deep", "number", "run", "duration", "type", "flood", "cell", "garbage", "timestamps", "summary"]
        )
    )
    if family == "deep":
        depth = draw(st.integers(min_value=33, max_value=3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        where = draw(st.sampled_from(["facts", "summary", "state"]))
        nested = opener * depth + "1" + closer * depth
        if where == "facts":
            return '{"schema": 1, "type": "facts", "facts": {"x": ' + nested + "}}"
        if where == "summary":
            return (
                '{"schema": 1, "type": "cell_result", "cell_id": "{c}", "status": "ok", "summary": {"x": '
                + nested
                + "}}"
            )
        return '{"schema": 1, "type": "thermal", "cell_id": "{c}", "t_ns": 1, "state": {"x": ' + nested + "}}"
    if family == "number":
        number = draw(st.sampled_from(BAD_NUMBER_TEXT))
        head = '{"schema": 1, "type": '
        samples = head + '"samples", "cell_id": "{c}", "phase": "measure", '
        template = draw(
            st.sampled_from(
                [
                    samples + '"run": N, "ns": [1]}',
                    samples + '"run": 0, "ns": [1, N]}',
                    samples + '"run": 0, "ns": [1], "t_ns": [N]}',
                    head + '"thermal", "cell_id": "{c}", "t_ns": N, "state": {}}',
                    head + '"thermal", "cell_id": "{c}", "t_ns": 1, "state": {"x": N}}',
                    head + '"cell_result", "cell_id": "{c}", "status": "ok", "summary": {"p50": N}}',
                    head + '"done", "ok": true, "exit_code": N}',
                ]
            )
        )
        return template.replace("N", number)
    if family == "run":
        run = draw(
            st.one_of(
                st.booleans(),
                st.integers(max_value=-1),
                st.integers(min_value=2),  # the spec has runs = 2
                st.floats(allow_nan=False, allow_infinity=False),
                st.text(max_size=5),
                st.none(),
                st.lists(st.integers(), max_size=2),
            )
        )
        return line("samples", cell_id="{c}", run=run, phase="measure", ns=[1000])
    if family == "duration":
        value = draw(
            st.one_of(
                st.integers(max_value=-1),
                st.integers(min_value=INT64, max_value=2**80),
                st.booleans(),
                st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
                st.text(max_size=3),
            )
        )
        ns: list[Any] = [1000] * draw(st.integers(0, 3))
        ns.insert(draw(st.integers(0, len(ns))), value)
        return line("samples", cell_id="{c}", run=0, phase="measure", ns=ns)
    if family == "type":
        kind = draw(
            st.one_of(
                st.lists(st.text(max_size=8), max_size=2),
                st.integers(),
                st.none(),
                st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                st.text(max_size=10).filter(
                    lambda t: t not in TEMPLATES and t not in ("hello", "facts", "cell_started", "busy")
                ),
            )
        )
        return json.dumps({"schema": SCHEMA, "type": kind, "cell_id": "{c}"})
    if family == "flood":
        phase, count = draw(st.sampled_from([("measure", 3365), ("warmup", 120)]))
        return line(
            "samples", cell_id="{c}", run=0, phase=phase, ns=[1000] * (count + draw(st.integers(0, 500)))
        )
    if family == "cell":
        other = draw(st.text(max_size=6).filter(lambda t: not t.isdigit()))
        kind = draw(st.sampled_from(["samples", "thermal", "cell_result", "cell_started"]))
        fields = _fill(TEMPLATES.get(kind, {"cell_id": "{c}"}), other)
        return line(kind, **fields)
    if family == "timestamps":
        ns = [1000] * draw(st.integers(1, 5))
        t_ns = list(range(draw(st.integers(1, 8)).__index__()))
        if len(t_ns) == len(ns):
            t_ns.append(0)
        return line("samples", cell_id="{c}", run=0, phase="measure", ns=ns, t_ns=t_ns)
    if family == "summary":
        name = draw(st.sampled_from(["p50", "p95", "p99", "mean", "duration_s", "n", "loops"]))
        wrong: Any = draw(
            st.one_of(
                st.text(max_size=4),
                st.lists(st.integers(), max_size=2),
                st.integers(max_value=-1),
                st.floats(max_value=-0.001, allow_infinity=False),
            )
        )
        return line("cell_result", cell_id="{c}", status="ok", summary={name: wrong})
    text = draw(st.text(max_size=200).filter(lambda t: t.strip() and not t.lstrip().startswith("{")))
    return text


FUZZ = settings(
    max_examples=450,
    derandomize=True,  # seeded: the same lines on every run
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def test_fuzzed_bad_lines_are_always_protocol_errors_and_write_nothing(harness: Harness) -> None:
    @FUZZ
    @given(bad=bad_line(), good_before=st.integers(0, 2))
    def check(bad: str, good_before: int) -> None:
        first, _ = harness.cell_ids
        ok = line("samples", cell_id=first, run=1, phase="measure", ns=[1000], t_ns=[3])
        stream = [*job_start(first), *([ok] * good_before), bad.replace("{c}", first)]
        assert harness.feed(stream) == len(stream) - 1, f"not refused: {stream[-1][:300]!r}"

    check()
    assert harness.lines >= 1000
    assert harness.rejected >= 450


def test_fuzzed_lines_are_stored_or_refused_never_an_escaping_exception(harness: Harness) -> None:
    @FUZZ
    @given(events=st.lists(mutated_line(), min_size=1, max_size=4))
    def check(events: list[tuple[str, dict[str, Any]]]) -> None:
        first, _ = harness.cell_ids
        harness.feed([*job_start(first), *(line(kind, **_fill(fields, first)) for kind, fields in events)])

    check()
    assert harness.lines >= 1000
