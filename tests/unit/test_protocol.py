"""The wire format's decoder: every bad line is a ProtocolError, and nothing else escapes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleet_tui.sweep.events import BadEvent, EventOrder, check_content
from node_agent.protocol import MAX_LINE_BYTES, SCHEMA, ProtocolError, decode_event, encode_event


def line(event_type: str, **fields: Any) -> str:
    return json.dumps({"schema": SCHEMA, "type": event_type, **fields})


SAMPLES = {"cell_id": "7", "run": 0, "phase": "measure", "ns": [1200, 1300], "t_ns": [5, 6]}

BAD_LINES = {
    "not-json": "this is not json",
    "truncated": '{"schema": 1, "type": "samples", "ns": [1, 2',
    "not-an-object": "[1, 2, 3]",
    "deep-nesting": '{"schema": 1, "type": "facts", "facts": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "huge-int-digits": '{"schema": 1, "type": "done", "ok": true, "exit_code": ' + "9" * 5000 + "}",
    "int-past-int64-in-samples": line("samples", **{**SAMPLES, "ns": [2**63]}),
    "int-past-int64-in-t_ns": line("samples", **{**SAMPLES, "t_ns": [2**64]}),
    "thermal-t_ns-past-int64": line("thermal", t_ns=2**63, state={}),
    "float-overflow": '{"schema": 1, "type": "thermal", "t_ns": 1, "state": {"x": 1e400}}',
    "infinity-literal": '{"schema": 1, "type": "thermal", "t_ns": 1, "state": {"x": Infinity}}',
    "nan-literal": '{"schema": 1, "type": "facts", "facts": {"x": NaN}}',
    "unhashable-type": '{"schema": 1, "type": ["samples"]}',
    "object-type": '{"schema": 1, "type": {"a": 1}}',
    "unknown-type": line("reboot"),
    "schema-missing": '{"type": "done", "ok": true, "exit_code": 0}',
    "schema-bool": '{"schema": true, "type": "done", "ok": true, "exit_code": 0}',
    "schema-other": '{"schema": 99, "type": "done", "ok": true, "exit_code": 0}',
    "negative-duration": line("samples", **{**SAMPLES, "ns": [-1, -5, -(10**18)]}),
    "float-duration": line("samples", **{**SAMPLES, "ns": [1.5]}),
    "bool-duration": line("samples", **{**SAMPLES, "ns": [True]}),
    "string-duration": line("samples", **{**SAMPLES, "ns": ["3"]}),
    "ns-not-a-list": line("samples", **{**SAMPLES, "ns": 5}),
    "run-bool": line("samples", **{**SAMPLES, "run": True}),
    "run-string": line("samples", **{**SAMPLES, "run": "3"}),
    "run-float": line("samples", **{**SAMPLES, "run": 1.5}),
    "run-negative": line("samples", **{**SAMPLES, "run": -7}),
    "unknown-phase": line("samples", **{**SAMPLES, "phase": "cooldown"}),
    "samples-without-cell": line("samples", run=0, phase="measure", ns=[1]),
    "samples-without-run": line("samples", cell_id="7", phase="measure", ns=[1]),
    "cell_id-int": line("cell_started", cell_id=7),
    "result-status-unknown": line("cell_result", cell_id="7", status="great"),
    "result-summary-list": line("cell_result", cell_id="7", status="ok", summary=[1]),
    "result-reason-object": line("cell_result", cell_id="7", status="failed", reason={"x": 1}),
    "thermal-state-list": line("thermal", t_ns=1, state=[1]),
    "facts-missing": line("facts"),
    "done-exit-bool": line("done", ok=True, exit_code=False),
    "done-ok-int": line("done", ok=1, exit_code=0),
    "error-message-missing": line("error", code="x"),
    "warning-code-int": line("warning", code=3, message="m"),
    "busy-holder-string": line("busy", holder="someone"),
    "nested-past-max-depth": line("facts", facts={"x": json.loads("[" * 40 + "]" * 40)}),
    "int-past-int64-in-summary": line("cell_result", cell_id="7", status="ok", summary={"p50": 10**400}),
    "int-past-int64-in-facts": line("facts", facts={"memory": -(2**63) - 1}),
    "lone-surrogate-in-reason": '{"schema": 1, "type": "cell_result", "cell_id": "7", "status": "failed", '
    '"reason": "\\ud800"}',
    "lone-surrogate-in-a-key": '{"schema": 1, "type": "facts", "facts": {"\\udfff": 1}}',
    "too-long": '{"schema": 1, "type": "facts", "facts": {"x": "' + "a" * (MAX_LINE_BYTES + 1) + '"}}',
}


@pytest.mark.parametrize("text", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_every_kind_of_bad_line_is_a_protocol_error(text: str) -> None:
    with pytest.raises(ProtocolError):
        decode_event(text)
    with pytest.raises(ProtocolError):
        decode_event(text.encode())


def test_invalid_utf8_bytes_are_a_protocol_error_not_a_decode_error() -> None:
    with pytest.raises(ProtocolError):
        decode_event(b"\xff\xfe{\x00")


def test_good_events_decode_to_their_fields_and_keep_unknown_ones() -> None:
    event = decode_event(encode_event("samples", **SAMPLES, extra="kept"))
    assert event["ns"] == [1200, 1300] and event["run"] == 0 and event["extra"] == "kept"
    assert decode_event(encode_event("done", ok=False, exit_code=4))["exit_code"] == 4
    assert decode_event(encode_event("hello"))["type"] == "hello"
    big_but_fine = decode_event(line("samples", **{**SAMPLES, "ns": [2**63 - 1]}))
    assert big_but_fine["ns"] == [2**63 - 1]
    summary = decode_event(line("cell_result", cell_id="7", status="ok", summary={"p50": 1.5e6}))
    assert summary["summary"] == {"p50": 1.5e6}


def test_the_message_names_the_bad_field() -> None:
    with pytest.raises(ProtocolError, match=r"samples\.ns \[1\] = -5"):
        decode_event(line("samples", **{**SAMPLES, "ns": [1, -5]}))
    with pytest.raises(ProtocolError, match=r"samples\.run must be an integer"):
        decode_event(line("samples", **{**SAMPLES, "run": True}))


def events(*kinds_and_fields: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [decode_event(line(kind, **fields)) for kind, fields in kinds_and_fields]


def test_event_order_accepts_a_normal_job() -> None:
    order = EventOrder(["7"])
    for event in events(
        ("hello", {}),
        ("cell_started", {"cell_id": "7"}),
        ("samples", SAMPLES),
        ("thermal", {"t_ns": 1, "state": {}, "cell_id": "7"}),
        ("cell_result", {"cell_id": "7", "status": "ok"}),
        ("progress", {"cell_id": "7", "phase": "done"}),
        ("done", {"ok": True, "exit_code": 0}),
    ):
        order.check(event)


@pytest.mark.parametrize(
    ("stream", "needle"),
    [
        ([("samples", SAMPLES)], "before hello"),
        ([("cell_result", {"cell_id": "7", "status": "ok"})], "before hello"),
        ([("hello", {}), ("samples", SAMPLES)], "before its cell_started"),
        (
            [
                ("hello", {}),
                ("cell_started", {"cell_id": "7"}),
                ("cell_result", {"cell_id": "7", "status": "ok"}),
                ("samples", SAMPLES),
            ],
            "after its cell_result",
        ),
        ([("hello", {}), ("cell_started", {"cell_id": "8"})], "not in this job"),
        ([("hello", {}), ("cell_started", {"cell_id": "7"}), ("cell_started", {"cell_id": "7"})], "twice"),
        ([("hello", {}), ("hello", {})], "second hello"),
    ],
)
def test_event_order_violations_are_bad_events(stream: list[tuple[str, dict[str, Any]]], needle: str) -> None:
    order = EventOrder(["7"])
    decoded = events(*stream)
    with pytest.raises(BadEvent, match=needle):
        for event in decoded:
            order.check(event)


# --- a cell_result's energy figures are typed like every other field ---------------------------

ENERGY_OK = {
    "status": "ok",
    "reader": {"name": "macmon", "version": "0.6.1"},
    "j_per_inference": {"soc": {"estimate": 0.2, "lo": 0.18, "hi": 0.22}, "system": {"estimate": -0.01}},
    "avg_watts": {"soc": 8.0, "system": 18.0},
    "idle_watts": {"soc": 0.6},
}


def _result_with(energy: object) -> str:
    return encode_event("cell_result", cell_id="c", status="ok", summary={"p50": 1.0, "energy": energy})


def test_energy_figures_decode() -> None:
    event = decode_event(_result_with(ENERGY_OK))
    assert event["summary"]["energy"]["j_per_inference"]["system"]["estimate"] == -0.01  # below idle
    assert decode_event(_result_with({"status": "energy_too_short", "reader": None}))["summary"]


@pytest.mark.parametrize(
    ("energy", "words"),
    [
        ("watts", "summary energy: must be a JSON object"),
        ({"reader": {}}, "energy: status must be a string"),
        ({**ENERGY_OK, "avg_watts": {"soc": -1.0}}, "avg_watts['soc'] = -1.0 is not a non-negative number"),
        ({**ENERGY_OK, "idle_watts": {"soc": "0.6"}}, "idle_watts['soc']"),
        ({**ENERGY_OK, "j_per_inference": {"soc": {"lo": 1.0}}}, "j_per_inference['soc'] needs a numeric"),
        ({**ENERGY_OK, "j_per_inference": {"soc": {"estimate": 1, "hi": "x"}}}, "j_per_inference['soc'].hi"),
        ({**ENERGY_OK, "reader": "macmon"}, "reader must be a JSON object or null"),
    ],
)
def test_bad_energy_figures_are_refused_naming_the_field(energy: object, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_event(_result_with(energy))
    assert words in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("event_type", "fields", "needle"),
    [
        ("samples", {**SAMPLES, "t_ns": [1]}, "2 samples but 1 timestamps"),
        ("cell_result", {"cell_id": "7", "status": "ok", "summary": {"p95": -1}}, "summary.p95"),
        ("cell_result", {"cell_id": "7", "status": "ok", "summary": {"p50": "fast"}}, "summary.p50"),
        ("cell_result", {"cell_id": "7", "status": "ok", "summary": {"n": 1.5}}, "summary.n"),
        ("cell_result", {"cell_id": "7", "status": "ok", "summary": {"loops": True}}, "summary.loops"),
        ("cell_result", {"cell_id": "7", "status": "ok", "summary": {"flags": [1]}}, "summary.flags"),
        ("cell_result", {"cell_id": "7", "status": "ok", "summary": {"per_run": "x"}}, "summary.per_run"),
        ("cell_result", {"cell_id": "7", "status": "ok", "summary": {"drift": [1]}}, "summary.drift"),
        ("cell_result", {"cell_id": "7", "status": "ok", "summary": {"ci95": {"p95": [1]}}}, "ci95.p95"),
    ],
)
def test_content_a_reader_relies_on_is_checked(event_type: str, fields: dict[str, Any], needle: str) -> None:
    event = decode_event(line(event_type, **fields))  # each is well-formed alone
    with pytest.raises(BadEvent, match=needle):
        check_content(event)


def test_a_real_summary_shape_passes_the_content_check() -> None:
    summary: dict[str, Any] = {
        "p50": 1.2e6, "p95": 1.5e6, "p99": None, "n": 600, "runs": [0, 1], "loops": 1, "duration_s": 0.8,
        "ci95": {"p50": [1.1e6, 1.3e6], "p95": None}, "flags": ["not_converged"],
        "per_run": [{"p50": 1.2e6}], "conditions": {"before": {}}, "interval_method": "run_level",
    }  # fmt: skip
    check_content(decode_event(line("cell_result", cell_id="7", status="ok", summary=summary)))
    check_content(decode_event(line("samples", **SAMPLES)))
