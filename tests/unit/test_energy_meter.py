"""The cell's energy from its runs (node_agent.energy.meter.cell_energy), on synthetic traces with
exact answers: constant power per run, an idle baseline below it, a known number of inferences."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest

from node_agent.energy import PowerSample, ReaderInfo, idle_baseline, run_energy
from node_agent.energy.meter import CADENCE_ENV, RunMeter, _windows, cell_energy, rail_interval
from node_agent.stats import t_interval_of_logs

S = 1_000_000_000
INFO = ReaderInfo(name="macmon", version="0.6.1", interval_ms=100, publish_cadence_ms=100, kind="power")


def trace(watts_soc: float, watts_system: float, start_s: int, end_s: int) -> list[PowerSample]:
    """A reading every 100 ms over [start_s, end_s]: cpu carries the SoC power, gpu/ane idle."""
    return [
        PowerSample(t, {"cpu": watts_soc, "gpu": 0.0, "ane": 0.0, "system": watts_system})
        for t in range(start_s * S, end_s * S + 1, S // 10)
    ]


def run_record(watts: float, inferences: int, *, idle_watts: float = 1.0) -> dict[str, Any]:
    """What RunMeter.finish records for a run: 2 s idle, then a 4 s measure window."""
    samples = trace(idle_watts, idle_watts + 10, 0, 2) + trace(watts, watts + 10, 2, 6)
    idle = idle_baseline(samples, 0 + S // 10, 2 * S, INFO)
    measure = run_energy(samples, 2 * S, 6 * S, inferences, INFO, idle)
    return {
        "status": "ok",
        "idle": idle.to_dict(),
        "measure": measure.to_dict(),
        "reader": INFO.to_dict(),
        "selection": {"reader": INFO.to_dict(), "skipped": {"ioreport": "needs macOS"}},
    }


def test_joules_per_inference_net_of_idle_with_the_run_level_interval() -> None:
    per_run = [{"run": r, "energy": run_record(w, 400)} for r, w in enumerate((5.0, 5.5, 4.5))]
    energy = cell_energy(per_run, "macmon", {"thermal_pressure": "nominal", "power_source": "ac"})
    assert energy["status"] == "ok" and energy["window"] == "measure" and energy["n_runs"] == 3
    # (E - P_idle x T) / N = (W - 1) x 4 s / 400 per run
    expected = [(w - 1.0) * 4 / 400 for w in (5.0, 5.5, 4.5)]
    soc = energy["j_per_inference"]["soc"]
    assert soc["values"] == pytest.approx(expected)
    interval = t_interval_of_logs(expected, 0.95)
    assert interval is not None
    assert (soc["estimate"], soc["lo"], soc["hi"]) == pytest.approx(
        (interval["estimate"], interval["lo"], interval["hi"])
    )
    # The system rail idles 10 W higher, works 10 W higher: the same net joules.
    assert energy["j_per_inference"]["system"]["values"] == pytest.approx(expected)
    assert energy["avg_watts"]["soc"] == pytest.approx(5.0)
    assert energy["avg_watts"]["system"] == pytest.approx(15.0)
    assert energy["idle_watts"] == pytest.approx({"soc": 1.0, "system": 11.0})
    assert energy["gross_j_per_inference"]["soc"] == pytest.approx(5.0 * 4 / 400)
    assert energy["reader"]["name"] == "macmon" and energy["skipped"] == {"ioreport": "needs macOS"}
    assert (energy["thermal_state"], energy["power_source"]) == ("nominal", "ac")
    assert [r["run"] for r in energy["per_run"]] == [0, 1, 2]
    assert "reader" not in energy["per_run"][0]["measure"]  # stated once, at the top


def test_too_short_windows_publish_nothing_and_say_so() -> None:
    samples = trace(5.0, 15.0, 0, 1)
    short = run_energy(samples, S // 2, S // 2 + S // 5, 40, INFO, None)  # 200 ms < 10 x 100 ms
    assert short.status == "energy_too_short"
    record = {"status": "ok", "measure": short.to_dict(), "reader": INFO.to_dict()}
    energy = cell_energy([{"run": 0, "energy": record}], "macmon", None)
    assert energy["status"] == "energy_too_short"
    assert "j_per_inference" not in energy and "avg_watts" not in energy


def test_the_sustained_window_stands_in_when_no_measure_window_publishes() -> None:
    samples = trace(1.0, 11.0, 0, 2) + trace(6.0, 16.0, 2, 8)
    idle = idle_baseline(samples, S // 10, 2 * S, INFO)
    short = run_energy(samples, 2 * S, 2 * S + S // 5, 10, INFO, idle)
    sustained = run_energy(samples, 3 * S, 8 * S, 1000, INFO, idle)
    record = {"status": "ok", "measure": short.to_dict(), "sustained": sustained.to_dict()}
    energy = cell_energy([{"run": 0, "energy": record}], "macmon", None)
    assert energy["window"] == "sustained" and energy["n_runs"] == 1
    soc = energy["j_per_inference"]["soc"]
    assert soc["estimate"] == pytest.approx(5.0 * 5 / 1000) and soc["lo"] is None  # one run: no interval


def test_a_failed_reader_is_the_cells_energy_status() -> None:
    record = {"status": "energy_unavailable", "error": "no power reader works here (macmon: not found)"}
    energy = cell_energy([{"run": 0, "energy": record}], "auto", None)
    assert energy["status"] == "energy_unavailable" and "not found" in energy["error"]


def test_a_run_below_idle_keeps_its_value_but_no_interval() -> None:
    figure = rail_interval([0.02, -0.01])
    assert figure is not None and figure["lo"] is None
    assert figure["estimate"] == pytest.approx(0.005)
    assert rail_interval([]) is None
    assert not math.isnan(figure["estimate"])


def test_windows_from_the_worker_are_checked() -> None:
    raw = {
        "measure": {"start_ns": 10, "end_ns": 20, "inferences": 5},
        "sustained": {"start_ns": 30, "end_ns": 30, "inferences": 5},  # empty
        "bogus": {"start_ns": True, "end_ns": 20, "inferences": 5},
        "junk": "x",
    }
    assert _windows(raw) == {"measure": (10, 20, 5)}
    assert _windows(None) == {}


def test_no_reader_on_this_machine_is_recorded_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    meter = RunMeter("macmon", 100, threading.Event())
    with meter:
        meter.start_and_idle()
        record = meter.finish({"measure": {"start_ns": 1, "end_ns": 2, "inferences": 1}})
    assert record["status"] == "energy_unavailable"
    assert "macmon not found on PATH" in (record["error"] or "")


def test_a_run_metered_with_fake_macmon_collects_while_the_worker_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FakeMacmon (tests/fixtures/energy) on PATH: idle baseline, readings collected in the
    background during a 1.5 s "worker", then the window's figures; the reader is stopped."""
    import sys
    import time

    fake = Path(__file__).resolve().parents[1] / "fixtures" / "energy" / "fake_macmon"
    wrapper = tmp_path / "macmon"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(CADENCE_ENV, "100")
    with RunMeter("macmon", 100, threading.Event()) as meter:
        meter.start_and_idle()
        assert meter.status == "ok" and meter.idle is not None and meter.idle.status == "ok"
        assert len(meter.reader_pids()) == 1  # left out of the worker's contention check
        meter.start_collecting()
        start = time.monotonic_ns()
        time.sleep(1.5)
        end = time.monotonic_ns()
        assert meter.trace is not None and len(meter.trace.samples) > 5  # moved in the background
        record = meter.finish({"measure": {"start_ns": start, "end_ns": end, "inferences": 300}})
    assert record["status"] == "ok", record
    assert record["measure"]["status"] == "ok" and record["measure"]["joules_per_inference"]
    assert record["reader"]["notes"]["publish_cadence_override_ms"] == 100
    assert meter.selection is not None and meter.selection.reader is not None
    assert meter.selection.reader.stopped
