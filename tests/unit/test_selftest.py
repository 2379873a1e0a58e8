"""``agent selftest``: one facts event with pass / fail / skipped checks, and the exit code."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node_agent import selftest
from node_agent.protocol import Emitter, decode_event
from node_agent.selftest import Check, CheckResult

REPO = Path(__file__).resolve().parents[2]


def run_and_capture(
    checks: list[Check], *, darwin: bool | None = None
) -> tuple[int, list[dict[str, object]]]:
    stream = io.StringIO()
    code = selftest.run_selftest(Emitter(stream), checks, darwin=darwin)
    events = [decode_event(line) for line in stream.getvalue().splitlines()]
    return code, events


def passing() -> CheckResult:
    return "pass", "fine"


def failing() -> CheckResult:
    return "fail", "the brief was wrong here"


def raising() -> CheckResult:
    raise ImportError("No module named 'mlx'")


def test_one_facts_event_with_every_check_and_exit_code() -> None:
    code, events = run_and_capture(
        [Check("a", passing), Check("b", failing), Check("c", raising)], darwin=False
    )
    assert code == 1
    assert [e["type"] for e in events] == ["facts"]
    payload = events[0]["facts"]
    assert isinstance(payload, dict)
    assert payload["checks"] == [
        {"name": "a", "status": "pass", "detail": "fine"},
        {"name": "b", "status": "fail", "detail": "the brief was wrong here"},
        {"name": "c", "status": "fail", "detail": "ImportError: No module named 'mlx'"},
    ]
    assert payload["summary"] == {"pass": 1, "fail": 2, "skipped": 0}


def test_macos_checks_are_skipped_with_the_reason_off_macos() -> None:
    code, events = run_and_capture(
        [Check("mac", failing, macos="pmset"), Check("any", passing)], darwin=False
    )
    assert code == 0
    checks = events[0]["facts"]["checks"]  # type: ignore[index]
    assert checks[0] == {"name": "mac", "status": "skipped", "detail": "needs macOS: pmset"}


def test_macos_checks_run_on_macos() -> None:
    code, events = run_and_capture([Check("mac", failing, macos="pmset")], darwin=True)
    assert code == 1
    assert events[0]["facts"]["checks"][0]["status"] == "fail"  # type: ignore[index]


def test_long_details_are_clipped() -> None:
    outcomes = selftest.run_checks([Check("long", lambda: ("pass", "x" * 10_000))], darwin=False)
    assert len(outcomes[0].detail) < 4100 and outcomes[0].detail.endswith("(10000 chars)")


def test_signal_check_catches_and_restores_handlers() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    status, detail = selftest.check_signal_handling()
    assert status == "pass", detail
    assert "SIGTERM" in detail and "SIGHUP" in detail and "SIGINT" in detail
    assert {s: signal.getsignal(s) for s in before} == before


def test_attention_models_convert_with_their_flexible_shapes(tmp_path: Path) -> None:
    """The F1-F3 model is built for real here; only compiling and predicting need the Mac."""
    from coremltools.models.utils import load_spec

    paths = selftest.build_attention_packages(str(tmp_path))
    enumerated = load_spec(paths["enumerated"]).description.input[0].type.multiArrayType
    lengths = [list(s.shape)[1] for s in enumerated.enumeratedShapes.shapes]
    assert lengths == list(selftest.ENUMERATED_LENGTHS)
    ranged = load_spec(paths["range"]).description.input[0].type.multiArrayType
    assert (ranged.shapeRange.sizeRanges[1].lowerBound, ranged.shapeRange.sizeRanges[1].upperBound) == (
        1,
        1024,
    )
    assert list(ranged.shape)[1] == selftest.RANGE_DEFAULT


def test_agent_selftest_on_this_machine() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "node_agent", "selftest"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        timeout=120,
        check=False,
    )
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["type"] for e in events] == ["hello", "facts", "done"], done.stderr
    checks = {c["name"]: c for c in events[1]["facts"]["checks"]}
    assert set(checks) == {c.name for c in selftest.default_checks()}
    failed = {name: c["detail"] for name, c in checks.items() if c["status"] == "fail"}
    assert failed == {}
    assert done.returncode == 0 and events[2]["exit_code"] == 0
    if sys.platform != "darwin":
        mac_only = {c.name for c in selftest.default_checks() if c.macos}
        assert mac_only and all(checks[n]["status"] == "skipped" for n in mac_only)
        assert all(checks[n]["detail"].startswith("needs macOS: ") for n in mac_only)
        for name in ("numpy", "mlx", "coremltools", "ct_target_alias", "compute_plan_import", "facts"):
            assert checks[name]["status"] == "pass", checks[name]


@pytest.mark.macos
@pytest.mark.skipif(sys.platform != "darwin", reason="needs macOS: the thermal, pmset and sysctl checks")
def test_macos_condition_checks_pass_on_a_mac() -> None:
    names = {"f4_thermal_notify", "f4_thermal_processinfo", "f4_pmset_therm", "f4_pmset_settings"}
    names |= {"f4_pmset_batt", "f6_sysctl_formats", "native_arm64", "mlx_metal"}
    checks = [c for c in selftest.default_checks() if c.name in names]
    outcomes = selftest.run_checks(checks)
    assert {o.name: o.status for o in outcomes} == dict.fromkeys(names, "pass"), outcomes
