"""The real macmon reader against FakeMacmon (tests/fixtures/energy/fake_macmon) on PATH.

The reader is a child process the agent owns: samples must arrive, and the fake must be gone
after stop, after a reader error, after the owning process is interrupted (SIGINT, SIGTERM
through the agent's handler) and even after it is killed outright (SIGKILL: the fake dies
on its next write into the closed pipe). No assertion here is about how long anything took;
the waits are generous deadlines for something that must happen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent import selftest
from node_agent.energy import (
    EnergyReader,
    PowerSample,
    ReaderError,
    Sample,
    make_reader,
    select_reader,
    stop_all_readers,
)
from node_agent.energy.child import ChildProcessReader
from node_agent.energy.ioreport import IOReportReader
from node_agent.energy.macmon import MacmonReader
from node_agent.energy.mactop import MactopReader
from node_agent.energy.powermetrics import PowermetricsReader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "energy"
FAKE = FIXTURES / "fake_macmon"
REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0
"""A bound on each wait for a child process (a Python start took over 20 s on a box at load 8)."""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups and signals are POSIX")


@pytest.fixture
def fake_macmon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`macmon` on PATH runs FakeMacmon with this interpreter; yields the pid file it writes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "macmon"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))  # only the fake: a real mactop / macmon must not answer
    pidfile = tmp_path / "fake.pids"
    monkeypatch.setenv("FAKE_MACMON_PIDFILE", str(pidfile))
    for name in ("IGNORE_TERM", "SPAWN_CHILD", "GARBAGE_AT", "FLOOD", "LONG_LINE", "EXIT_AFTER"):
        monkeypatch.delenv(f"FAKE_MACMON_{name}", raising=False)
    yield pidfile
    stop_all_readers()


def gone(pid: int) -> bool:
    """No such process, or only its zombie left for someone else (init) to reap."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def wait_for(condition: object, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def fake_pids(pidfile: Path) -> list[int]:
    wait_for(pidfile.exists, "the fake's pid file")
    return [int(x) for x in pidfile.read_text().split()]


def collect(reader: ChildProcessReader, count: int) -> list[PowerSample]:
    samples: list[PowerSample] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(samples) < count and time.monotonic() < deadline:
        samples += [s for s in reader.poll(timeout_s=0.5) if isinstance(s, PowerSample)]
    return samples


def test_samples_arrive_and_the_fake_is_gone_after_stop(fake_macmon: Path) -> None:
    with MacmonReader(100) as reader:
        samples = collect(reader, 3)
        [pid] = fake_pids(fake_macmon)
        assert reader.pid == pid and not gone(pid)
        info = reader.info()
    stopped_at = time.monotonic_ns()  # the with block has stopped the reader
    assert len(samples) >= 3
    assert samples[0].watts["cpu"] == 0.25233203172683716  # the first recorded line
    assert samples[1].watts["cpu"] == 0.6359732151031494  # the second
    assert [s.line_no for s in samples[:3]] == [1, 2, 3]
    assert all(a.t_ns < b.t_ns for a, b in zip(samples, samples[1:], strict=False))
    assert all(s.interval_ns == 100_000_000 for s in samples)
    assert info.to_dict() == {
        "name": "macmon",
        "version": "0.6.1",
        "interval_ms": 100,
        "publish_cadence_ms": 2000,
        "kind": "power",
        "notes": {"schema": "<=0.6"},
    }
    assert gone(pid)
    # A line read before the stop may still be handed out (it belongs to the window); none after.
    leftover = reader.poll()
    assert all(s.t_ns <= stopped_at for s in leftover)
    reader.stop()  # idempotent
    assert reader.poll() == []


def test_the_requested_interval_reaches_the_tool(fake_macmon: Path) -> None:
    with MacmonReader(300):
        [pid] = fake_pids(fake_macmon)
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    assert argv[-4:-1] == [b"pipe", b"-i", b"300"]


@pytest.mark.parametrize(
    ("env", "message", "line_no", "good_before"),
    [
        ({"FAKE_MACMON_GARBAGE_AT": "2"}, "not JSON", 2, 1),
        ({"FAKE_MACMON_LONG_LINE": "1"}, "line over 262144 bytes", 1, 0),
        ({"FAKE_MACMON_FLOOD": "1"}, "lines in one second (flood)", None, None),
        ({"FAKE_MACMON_EXIT_AFTER": "2"}, "exited early (exit status 3); stderr: sensor gone", 2, 2),
    ],
)
def test_a_misbehaving_reader_is_a_reader_error_and_leaves_no_process(
    fake_macmon: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    message: str,
    line_no: int | None,
    good_before: int | None,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reader = MacmonReader(100)
    good: list[PowerSample] = []
    with reader:
        [pid] = fake_pids(fake_macmon)
        deadline = time.monotonic() + DEADLINE_S
        with pytest.raises(ReaderError) as caught:  # noqa: PT012 - the good samples come first
            while time.monotonic() < deadline:
                good += [s for s in reader.poll(timeout_s=0.5) if isinstance(s, PowerSample)]
        wait_for(lambda: gone(pid), "the fake to end after the error, before stop")
    assert caught.value.reader == "macmon" and message in str(caught.value)
    if line_no is not None:
        assert caught.value.line_no == line_no
        assert len(good) == good_before  # the lines before the error were delivered, nothing after
    assert gone(pid)


def test_stop_escalates_to_sigkill_and_kills_the_whole_group(
    fake_macmon: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MACMON_IGNORE_TERM", "1")
    monkeypatch.setenv("FAKE_MACMON_SPAWN_CHILD", "1")
    with MacmonReader(100) as reader:
        assert collect(reader, 1)
        pid, grandchild = fake_pids(fake_macmon)
        assert os.getpgid(grandchild) == pid  # its own group, led by the tool
    assert gone(pid) and gone(grandchild)


def test_the_last_resort_cleanup_stops_every_live_reader(fake_macmon: Path) -> None:
    """What the atexit hook runs: a reader nobody stopped is stopped and reaped."""
    reader = MacmonReader(100)
    reader.start()
    assert collect(reader, 1)
    [pid] = fake_pids(fake_macmon)
    stop_all_readers()
    assert reader.stopped and gone(pid)


OWNER = """
import signal, sys, time
from node_agent.energy.macmon import MacmonReader
if sys.argv[1] == "agent-handler":
    # like the agent's runner: SIGTERM unwinds the run instead of killing the interpreter
    def stop(signum, frame):
        raise SystemExit(f"received {signal.Signals(signum).name}")
    signal.signal(signal.SIGTERM, stop)
with MacmonReader(100) as reader:
    while not reader.poll(timeout_s=0.5):
        pass
    print("ready", reader.pid, flush=True)
    while True:
        reader.poll(timeout_s=0.5)
"""


@pytest.mark.parametrize(
    ("mode", "sig"),
    [("default", signal.SIGINT), ("agent-handler", signal.SIGTERM), ("default", signal.SIGKILL)],
)
def test_no_orphan_when_the_owning_process_is_interrupted(fake_macmon: Path, mode: str, sig: int) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        # Python keeps SIGINT ignored if it starts ignored; in the full suite the test process
        # can be ignoring it at this point, and the owner would then never see the SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert owner.stdout is not None
        ready = owner.stdout.readline().split()
        assert ready[:1] == ["ready"], owner.stderr.read() if owner.stderr else ""
        pid = int(ready[1])
        assert not gone(pid)
        owner.send_signal(sig)
        owner.wait(timeout=DEADLINE_S)
        wait_for(lambda: gone(pid), f"the fake macmon to end after {signal.Signals(sig).name} to its owner")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    stderr = owner.stderr.read() if owner.stderr else ""
    # the owner unwound through its handler (and so stopped its reader itself), or was killed
    expected = {signal.SIGINT: "KeyboardInterrupt", signal.SIGTERM: "received SIGTERM", signal.SIGKILL: ""}
    assert expected[signal.Signals(sig)] in stderr
    if sig == signal.SIGKILL:
        assert owner.returncode == -signal.SIGKILL


def off_macos(name: str, interval_ms: int) -> EnergyReader:
    """The readers as they are off macOS (on a Mac, ioreport itself would be the first that works)."""
    return IOReportReader(interval_ms, darwin=False) if name == "ioreport" else make_reader(name, interval_ms)


def test_auto_takes_the_first_reader_that_works_and_records_the_others(fake_macmon: Path) -> None:
    selection = select_reader("auto", 100, factory=off_macos)
    try:
        assert selection.reader is not None and selection.reader.name == "macmon"
        assert selection.first_samples and isinstance(selection.first_samples[0], PowerSample)
        record = selection.record()
        skipped = record["skipped"]
        assert isinstance(skipped, dict) and list(skipped) == ["ioreport"]
        assert skipped["ioreport"] == "needs macOS (libIOReport)"
        [pid] = fake_pids(fake_macmon)
    finally:
        if selection.reader is not None:
            selection.reader.stop()
    assert gone(pid)


def test_auto_skips_a_reader_that_fails_and_says_why(
    fake_macmon: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MACMON_GARBAGE_AT", "1")
    selection = select_reader("auto", 100, factory=off_macos, first_sample_timeout_s=DEADLINE_S)
    assert selection.reader is None
    assert "macmon line 1: not JSON" in selection.skipped["macmon"]
    assert selection.skipped["mactop"] == "mactop not found on PATH"
    assert gone(fake_pids(fake_macmon)[0])


def test_off_and_unknown_choices() -> None:
    assert select_reader("off", 100).reader is None
    with pytest.raises(ValueError, match="unknown energy reader 'watts'"):
        select_reader("watts", 100)


def test_selftest_energy_checks_run_the_real_readers(fake_macmon: Path) -> None:
    """On a Mac these run as they are; here the macmon check runs the reader against the fake."""
    status, detail = selftest.check_energy_macmon()
    assert status == "pass", detail
    assert detail.startswith("macmon 0.6.1: ") and "'schema': '<=0.6'" in detail
    assert gone(fake_pids(fake_macmon)[0])
    assert selftest.check_energy_mactop() == ("skipped", "mactop not found on PATH")
    status, detail = selftest.check_energy_powermetrics()
    assert status == "skipped" and ("root" in detail or "not found" in detail)
    if sys.platform != "darwin":
        assert selftest.check_energy_ioreport() == ("fail", "needs macOS (libIOReport)")
        skipped = selftest.run_checks([c for c in selftest.default_checks() if c.name.startswith("energy_")])
        assert [(o.name, o.status) for o in skipped] == [
            ("energy_ioreport", "skipped"),
            ("energy_macmon", "skipped"),
            ("energy_mactop", "skipped"),
            ("energy_powermetrics", "skipped"),
        ]
        assert all(o.detail.startswith("needs macOS: ") for o in skipped)


def install_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str) -> None:
    """Put `tool` on a PATH of its own, running tests/fixtures/energy/fake_<tool>."""
    bin_dir = tmp_path / f"bin-{tool}"
    bin_dir.mkdir()
    wrapper = bin_dir / tool
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIXTURES / f"fake_{tool}"}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


@pytest.mark.parametrize(
    ("version", "system", "notes"),
    [
        (
            "2.1.3",
            50.91318893432617,
            {"system_power_meaning": "residual", "system_meaning_source": "version"},
        ),
        (
            "0.2.6",
            37.47166092432617,
            {
                "system_power_meaning": "whole_system",
                "system_meaning_source": "version",
                "system_meaning_conflict": {"line": 1, "line_says": "residual"},
            },
        ),
    ],
)
def test_mactop_reader_against_fake_mactop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, system: float, notes: dict[str, object]
) -> None:
    install_fake(tmp_path, monkeypatch, "mactop")
    monkeypatch.setenv("FAKE_MACTOP_VERSION", version)
    with MactopReader(150) as reader:
        samples = collect(reader, 2)
        pid = reader.pid
        info = reader.info()
    assert len(samples) >= 2 and pid is not None and gone(pid)
    assert samples[0].watts == {
        "cpu": 2.1959999999999997,
        "gpu": 5.38552801,
        "ane": 0.0,
        "dram": 5.702,
        "gpu_sram": 0.158,
        "system": system,
    }
    assert info.version == version and info.notes == notes


def test_powermetrics_reader_against_fake_powermetrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multi-line blocks through the pipe: one sample per block, stamped at its header."""
    install_fake(tmp_path, monkeypatch, "powermetrics")
    with PowermetricsReader(200, euid=0) as reader:
        samples = collect(reader, 2)
        pid = reader.pid
        info = reader.info()
    assert len(samples) >= 2 and pid is not None and gone(pid)
    assert samples[0].watts == {"cpu": 0.211, "gpu": 0.147, "ane": 0.0, "combined": 0.359}
    assert samples[0].interval_ns == 200_000_000
    assert samples[1].line_no - samples[0].line_no == 70  # a whole block apart
    first_duplicate = info.notes["duplicate_values"][0]
    assert first_duplicate[1:] == ("gpu", 0.147, 0.004)


class BrokenParserMacmon(MacmonReader):
    """A reader whose parser has a bug: it must surface as this reader's error."""

    def parse_line(self, line: str, line_no: int, t_ns: int) -> list[Sample]:
        raise KeyError("cpu_power")


def test_a_parser_bug_is_a_reader_error_not_a_silent_thread_death(fake_macmon: Path) -> None:
    with BrokenParserMacmon(100) as reader, pytest.raises(ReaderError, match="macmon line 1: KeyError"):  # noqa: PT012
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            reader.poll(timeout_s=0.5)
    assert gone(fake_pids(fake_macmon)[0])


def test_a_tool_that_cannot_execute_is_a_reader_error(tmp_path: Path) -> None:
    bogus = tmp_path / "macmon"
    bogus.write_bytes(b"\x7fELF not really")
    bogus.chmod(0o755)
    reader = MacmonReader(100, executable=str(bogus))
    with pytest.raises(ReaderError, match="cannot start"):
        reader.start()
    reader.stop()
