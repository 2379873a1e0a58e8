"""``agent selftest``: check every platform assumption of docs/PLATFORM.md, "Selftest checks" on this node.

One ``facts`` event carries ``{"checks": [{"name", "status", "detail"}], "summary": {...}}``
where status is "pass", "fail" or "skipped" (with the reason, e.g. "needs macOS: ..."). The
exit code is 0 when nothing failed, 1 otherwise. So the first real Mac tells us at once what
differs from the brief; the details carry the raw command output worth saving as fixtures.

Stdlib at import time: numpy, mlx and coremltools are imported inside the checks that need them.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from node_agent import thermal
from node_agent.protocol import Emitter
from node_agent.thermal import run_command

Status = Literal["pass", "fail", "skipped"]
CheckResult = tuple[Status, str]
MAX_DETAIL_CHARS: Final = 4000
MLX_MIN_PYTHON: Final = (3, 10)
EXPECTED_MLX: Final = "0.32."
EXPECTED_COREMLTOOLS: Final = "9."


@dataclass(frozen=True)
class Check:
    """One assumption: ``run`` returns (status, detail). ``macos`` says why it needs a Mac, if it does."""

    name: str
    run: Callable[[], CheckResult]
    macos: str | None = None


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    status: Status
    detail: str


def run_checks(checks: Sequence[Check], *, darwin: bool | None = None) -> list[CheckOutcome]:
    """Run each check; one that raises is a fail carrying the exception, never a crash."""
    on_mac = sys.platform == "darwin" if darwin is None else darwin
    outcomes = []
    for check in checks:
        if check.macos is not None and not on_mac:
            outcomes.append(CheckOutcome(check.name, "skipped", f"needs macOS: {check.macos}"))
            continue
        try:
            status, detail = check.run()
        except Exception as exc:  # a broken assumption often shows up as an exception
            status, detail = "fail", f"{type(exc).__name__}: {exc}"
        if len(detail) > MAX_DETAIL_CHARS:
            detail = detail[:MAX_DETAIL_CHARS] + f"... ({len(detail)} chars)"
        outcomes.append(CheckOutcome(check.name, status, detail))
    return outcomes


def run_selftest(out: Emitter, checks: Sequence[Check] | None = None, *, darwin: bool | None = None) -> int:
    """Run the checks, emit one ``facts`` event with them, return 0 if none failed else 1."""
    outcomes = run_checks(default_checks() if checks is None else checks, darwin=darwin)
    summary = {s: sum(1 for o in outcomes if o.status == s) for s in ("pass", "fail", "skipped")}
    out.emit("facts", facts={"checks": [asdict(o) for o in outcomes], "summary": summary})
    return 1 if summary["fail"] else 0


def _macos_version() -> tuple[int, ...]:
    text = platform.mac_ver()[0]
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return ()


# --- basic checks (any platform) -------------------------------------------------------------


def check_python_version() -> CheckResult:
    version = ".".join(str(p) for p in sys.version_info[:3])
    # The agent itself may be started by an old interpreter (the 3.9 CLT shim): say so clearly.
    if sys.version_info >= MLX_MIN_PYTHON:
        return "pass", f"Python {version} at {sys.executable}"
    return "fail", (
        f"Python {version} at {sys.executable}; MLX needs >= 3.10 (/usr/bin/python3 on macOS is the "
        "3.9 CLT shim): set the node's python to a venv of a python.org, Homebrew or uv Python"
    )


def check_numpy() -> CheckResult:
    import numpy

    return "pass", f"numpy {numpy.__version__}"


def check_mlx() -> CheckResult:
    import mlx.core as mx

    version = str(getattr(mx, "__version__", "unknown"))
    if not version.startswith(EXPECTED_MLX):
        return "fail", f"mlx {version}; docs/PLATFORM.md, 'MLX' describes {EXPECTED_MLX}x"
    return "pass", f"mlx {version}, default device {mx.default_device()}"


def check_coremltools() -> CheckResult:
    import coremltools as ct

    version = str(ct.__version__)
    if not version.startswith(EXPECTED_COREMLTOOLS):
        return (
            "fail",
            f"coremltools {version}; docs/PLATFORM.md describes {EXPECTED_COREMLTOOLS}x",
        )
    return "pass", f"coremltools {version}"


def check_target_alias() -> CheckResult:
    import coremltools as ct

    alias = ct.target.macOS14 is ct.target.iOS17
    values = f"macOS14 == {ct.target.macOS14.value}, macOS15 == {ct.target.macOS15.value}"
    if alias and ct.target.macOS14.value == 8:
        return "pass", f"ct.target.macOS14 is ct.target.iOS17; {values}"
    return "fail", f"ct.target.macOS14 is ct.target.iOS17 -> {alias}; {values} (brief: True, 8)"


def check_compute_plan_import() -> CheckResult:
    from coremltools.models.compute_plan import MLComputePlan

    has_loader = hasattr(MLComputePlan, "load_from_path")
    return ("pass" if has_loader else "fail"), f"MLComputePlan importable; load_from_path: {has_loader}"


def check_facts() -> CheckResult:
    from node_agent.facts import collect_facts

    facts = collect_facts()
    missing = [k for k in ("chip", "cores_total", "memory_bytes", "os_version") if not facts.get(k)]
    shown = {k: facts.get(k) for k in ("chip", "hw_model", "cores_total", "cores_p", "cores_e", "gpu_cores")}
    detail = f"{shown}; memory {facts.get('memory_bytes')}; collected in {facts.get('collect_seconds')} s"
    if missing:
        return "fail", f"facts without {', '.join(missing)}: {detail}"
    return "pass", detail


def check_remote_path() -> CheckResult:
    """F5: PATH and python3 as a non-interactive SSH command sees them (informational)."""
    path = os.environ.get("PATH", "")
    clt = run_command(["/usr/bin/python3", "-V"], timeout=10) if os.path.exists("/usr/bin/python3") else None
    homebrew = "/opt/homebrew/bin" in path.split(os.pathsep)
    return "pass", (
        f"PATH={path}; command -v python3 -> {shutil.which('python3')}; /usr/bin/python3 -V -> "
        f"{(clt or '').strip() or None}; /opt/homebrew/bin on PATH: {homebrew}; "
        f"SSH session: {'SSH_CONNECTION' in os.environ}; agent python {sys.executable}"
    )


def check_signal_handling() -> CheckResult:
    """F7 (agent side): SIGTERM, SIGHUP and SIGINT handlers install and run in this process.

    Delivery through sshd (a controller ``terminate()`` reaching the agent) is checked from the
    controller side (``fleet-tui selftest``); this proves the agent can catch what arrives.
    """
    received: list[int] = []
    wanted = [signal.SIGTERM, signal.SIGINT]
    if hasattr(signal, "SIGHUP"):
        wanted.append(signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in wanted}
    try:
        for sig in wanted:
            signal.signal(sig, lambda signum, frame: received.append(signum))
            os.kill(os.getpid(), sig)
            deadline = time.monotonic() + 1.0
            while sig not in received and time.monotonic() < deadline:
                time.sleep(0.005)  # the handler runs between bytecodes of the main thread
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    missing = [signal.Signals(s).name for s in wanted if s not in received]
    detail = f"caught {[signal.Signals(s).name for s in received]} (pgid {os.getpgid(0)}, sid {os.getsid(0)})"
    return ("fail", f"not delivered: {missing}; {detail}") if missing else ("pass", detail)


# --- macOS checks ----------------------------------------------------------------------------


def check_native_arm64() -> CheckResult:
    machine = platform.machine()
    translated = run_command(["sysctl", "-n", "sysctl.proc_translated"])
    detail = f"platform.machine() = {machine}; sysctl.proc_translated = {(translated or '').strip() or None}"
    if machine != "arm64" or (translated or "").strip() == "1":
        return "fail", f"{detail}: MLX needs a native arm64 Python (not Intel, not Rosetta)"
    return "pass", detail


def check_mlx_metal() -> CheckResult:
    import mlx.core as mx

    if not mx.metal.is_available():
        return "fail", "mx.metal.is_available() is False: the MLX gpu engine cannot run"
    return "pass", f"mx.metal.is_available() True; mx.device_info() = {mx.device_info()}"


def check_macos_for_compute_plan() -> CheckResult:
    version = _macos_version()
    shown = ".".join(map(str, version)) or "unknown"
    if version >= (14, 4):
        return "pass", f"macOS {shown} >= 14.4: MLComputePlan available"
    return "fail", f"macOS {shown} < 14.4: MLComputePlan is unavailable, path profiling is skipped"


def check_ane_cores() -> CheckResult:
    if _macos_version() < (14, 0):
        return "skipped", "needs macOS 14+ for MLComputeDevice"
    from coremltools.models.compute_device import MLComputeDevice, MLNeuralEngineComputeDevice

    devices = MLComputeDevice.get_all_compute_devices()
    ane = next((d for d in devices if isinstance(d, MLNeuralEngineComputeDevice)), None)
    names = [type(d).__name__ for d in devices]
    if ane is None:
        return "fail", f"no Neural Engine among compute devices {names}"
    return "pass", f"ANE total_core_count = {ane.total_core_count}; devices {names}"


def check_thermal_notify() -> CheckResult:
    """F4: the notify key, which powermetrics reads, without root."""
    lib = thermal.load_libsystem()
    if lib is None:
        return "fail", f"cannot load {thermal.LIBSYSTEM_PATH} with the notify functions"
    level = thermal.read_notify_thermal_level(lib)
    if level is None:
        return "fail", "notify_register_check / notify_get_state returned an error status"
    if not 0 <= level < len(thermal.THERMAL_PRESSURE_LEVELS):
        return "fail", f"level {level} is outside 0..4 (the iOS 0/10/20 scale?)"
    return (
        "pass",
        f"{thermal.THERMAL_NOTIFY_KEY.decode()} = {level} ({thermal.THERMAL_PRESSURE_LEVELS[level]})",
    )


def check_thermal_processinfo() -> CheckResult:
    """F4: NSProcessInfo thermalState and isLowPowerModeEnabled through the objc runtime."""
    reader = thermal.ObjcProcessInfo()
    state, low_power = reader.thermal_state(), reader.low_power_mode_enabled()
    detail = f"thermalState = {state}; isLowPowerModeEnabled = {low_power}"
    if state is None or not 0 <= state < len(thermal.NS_THERMAL_STATES):
        return "fail", detail
    return "pass", f"{detail} ({thermal.NS_THERMAL_STATES[state]})"


def check_pmset_therm() -> CheckResult:
    raw = run_command(["pmset", "-g", "therm"])
    parsed = thermal.parse_pmset_therm(raw)
    if raw is None or (parsed["cpu_speed_limit"] is None and not parsed["notes"]):
        return "fail", f"pmset -g therm not understood; raw: {raw!r}"
    return "pass", f"parsed {parsed}; raw: {raw!r}"


def check_pmset_settings() -> CheckResult:
    raw = run_command(["pmset", "-g"])
    settings = thermal.parse_pmset_settings(raw)
    if not settings:
        return "fail", f"pmset -g has neither lowpowermode nor powermode; raw: {raw!r}"
    return "pass", f"{settings} -> low power {thermal.low_power_from_settings(settings)}; raw: {raw!r}"


def check_pmset_batt() -> CheckResult:
    raw = run_command(["pmset", "-g", "batt"])
    parsed = thermal.parse_pmset_batt(raw)
    if parsed["power_source"] is None:
        return "fail", f"pmset -g batt: no 'Now drawing from' AC/Battery line; raw: {raw!r}"
    return "pass", f"parsed {parsed}; raw: {raw!r}"


def check_sysctl_formats() -> CheckResult:
    """F6: the formats of the pressure level, boot time and load average."""
    from node_agent import facts_macos as facts

    level_raw = run_command(["sysctl", "kern.memorystatus_vm_pressure_level"])
    boot_raw = run_command(["sysctl", "-n", "kern.boottime"])
    load_raw = run_command(["sysctl", "-n", "vm.loadavg"])
    level = facts.parse_memory_pressure_level(
        facts.parse_sysctl_lines(level_raw).get("kern.memorystatus_vm_pressure_level")
    )
    boot = facts.parse_boottime(boot_raw)
    load = facts.parse_loadavg(load_raw)
    detail = (
        f"pressure level -> {level} (raw {level_raw!r}); boottime -> {boot} (raw {boot_raw!r}); "
        f"loadavg -> {load} (raw {load_raw!r})"
    )
    return ("pass" if None not in (level, boot, load) else "fail"), detail


# --- energy readers: available, version, one sample -------------------------------------------

ENERGY_CHECK_INTERVAL_MS: Final = 250
ENERGY_FIRST_SAMPLE_S: Final = 5.0
IOREPORT_LOAD_S: Final = 4.0
"""Longer than two ~2 s publications of the mJ channels, so the CPU delta must be non-zero."""


def _busy(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    x = 0
    while time.monotonic() < deadline:
        x = (x * 31 + 7) % 1_000_003


def _reader_sample_check(reader: Any, *, load_s: float = 0.0) -> CheckResult:
    """Start `reader`, wait for a first sample (under a CPU load for `load_s`), stop it."""
    from node_agent.energy import EnergyTrace, ReaderError

    reason = reader.unavailable_reason()
    if reason is not None:
        return "skipped", reason
    version = reader.version()
    try:
        with reader:
            trace = EnergyTrace(reader)
            if load_s:
                _busy(load_s)
            deadline = time.monotonic() + ENERGY_FIRST_SAMPLE_S
            while not trace.samples and time.monotonic() < deadline:
                trace.collect(0.25)
            trace.collect(0.0)
            info = reader.info().to_dict()
    except ReaderError as exc:
        return "fail", f"{reader.name} {version}: {exc}"
    if not trace.samples:
        return "fail", f"{reader.name} {version}: no sample within {ENERGY_FIRST_SAMPLE_S} s"
    first = trace.samples[0]
    return "pass", f"{reader.name} {version}: {len(trace.samples)} samples, first {first}; info {info}"


def check_energy_ioreport() -> CheckResult:
    """The ctypes IOReport reader: channels found, their units, a non-zero CPU delta under load."""
    from node_agent.energy import EnergyDelta, ReaderError
    from node_agent.energy.ioreport import IOReportReader

    reader = IOReportReader(ENERGY_CHECK_INTERVAL_MS)
    reason = reader.unavailable_reason()
    if reason is not None:
        return "fail", reason
    try:
        with reader:
            _busy(IOREPORT_LOAD_S)
            deltas = [d for d in reader.poll(0.5) if isinstance(d, EnergyDelta)]
            report = reader.channel_report()
            info = reader.info().to_dict()
    except ReaderError as exc:
        return "fail", f"ioreport: {exc}"
    joules: dict[str, float] = {}
    for delta in deltas:
        joules[delta.rail] = joules.get(delta.rail, 0.0) + delta.joules
    detail = (
        f"{len(report['units'])} channels; rails {report['rails']}; units of the rail channels "
        f"{ {n: report['units'][n] for n in report['rails']} }; joules in {IOREPORT_LOAD_S} s of load "
        f"{joules}; info {info}"
    )
    if joules.get("cpu", 0.0) <= 0:
        return "fail", f"no CPU energy counted under load: {detail}"
    return "pass", detail


def check_energy_macmon() -> CheckResult:
    from node_agent.energy.macmon import MacmonReader

    return _reader_sample_check(MacmonReader(ENERGY_CHECK_INTERVAL_MS))


def check_energy_mactop() -> CheckResult:
    from node_agent.energy.mactop import MactopReader

    return _reader_sample_check(MactopReader(ENERGY_CHECK_INTERVAL_MS))


def check_energy_powermetrics() -> CheckResult:
    from node_agent.energy.powermetrics import PowermetricsReader

    return _reader_sample_check(PowermetricsReader(1000))


# --- Core ML on the Mac (F1-F3): one small attention model, two ways of making it flexible -----

ATTENTION_D: Final = 256
ATTENTION_HEADS: Final = 4
ENUMERATED_LENGTHS: Final = (128, 256, 512)
RANGE_DEFAULT: Final = 128


def build_attention_packages(out_dir: str) -> dict[str, str]:
    """Convert the attention block twice (EnumeratedShapes, RangeDim) and save both.

    docs/PLATFORM.md, "Core ML conversion" and "Compute plan" say why.

    Runs anywhere coremltools converts (Linux too). Returns {"enumerated": path, "range": path}.
    """
    import coremltools as ct
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol

    rng = np.random.default_rng(0)
    d, h = ATTENTION_D, ATTENTION_HEADS
    dh = d // h
    wq, wk, wv, wo = (rng.standard_normal((d, d)).astype(np.float32) * d**-0.5 for _ in range(4))
    gamma, beta = np.ones(d, np.float32), np.zeros(d, np.float32)
    seq = get_new_symbol()

    @mb.program(  # type: ignore[untyped-decorator]
        input_specs=[mb.TensorSpec(shape=(1, seq, d))], opset_version=ct.target.macOS14
    )
    def attn(x: Any) -> Any:
        hid = mb.layer_norm(x=x, axes=[-1], gamma=gamma, beta=beta, epsilon=1e-5)
        q, k, v = (mb.linear(x=hid, weight=w) for w in (wq, wk, wv))

        def heads(t: Any) -> Any:
            return mb.transpose(x=mb.reshape(x=t, shape=[1, -1, h, dh]), perm=[0, 2, 1, 3])

        q, k, v = heads(q), heads(k), heads(v)
        s = mb.mul(x=mb.matmul(x=q, y=k, transpose_y=True), y=np.float32(dh**-0.5))
        o = mb.matmul(x=mb.softmax(x=s, axis=-1), y=v)
        o = mb.reshape(x=mb.transpose(x=o, perm=[0, 2, 1, 3]), shape=[1, -1, d])
        return mb.add(x=x, y=mb.linear(x=o, weight=wo), name="y")

    shapes = {
        "enumerated": ct.EnumeratedShapes(
            shapes=[(1, n, d) for n in ENUMERATED_LENGTHS], default=(1, ENUMERATED_LENGTHS[0], d)
        ),
        "range": (1, ct.RangeDim(lower_bound=1, upper_bound=1024, default=RANGE_DEFAULT), d),
    }
    paths = {}
    for kind, shape in shapes.items():
        model = ct.convert(
            attn,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.macOS14,
            compute_precision=ct.precision.FLOAT16,
            inputs=[ct.TensorType(name="x", shape=shape)],
        )
        path = os.path.join(out_dir, f"attention-{kind}.mlpackage")
        model.save(path)
        paths[kind] = path
    return paths


class _MacModels:
    """The converted and compiled attention models, built once per selftest run."""

    def __init__(self) -> None:
        from coremltools.models.utils import compile_model

        self.tmp = tempfile.mkdtemp(prefix="fleet-selftest-")
        self.packages = build_attention_packages(self.tmp)
        self.compiled = {
            kind: str(compile_model(pkg, destination_path=os.path.join(self.tmp, f"{kind}.mlmodelc")))
            for kind, pkg in self.packages.items()
        }


_models_cache: list[_MacModels] = []


def _mac_models() -> _MacModels:
    if not _models_cache:
        _models_cache.append(_MacModels())
    return _models_cache[0]


def check_compute_plan_attention() -> CheckResult:
    """F1: under CPU_AND_NE, does the plan put most of the attention cost on the ANE?"""
    import coremltools as ct

    from node_agent.compute_plan import compute_plan_summary

    if _macos_version() < (14, 4):
        return "skipped", "needs macOS 14.4+ for MLComputePlan"
    models = _mac_models()
    shares = {
        kind: compute_plan_summary(path, ct.ComputeUnit.CPU_AND_NE)["cost_by_device"]
        for kind, path in models.compiled.items()
    }
    enumerated_ane = shares["enumerated"].get("ane", 0.0) / (sum(shares["enumerated"].values()) or 1.0)
    detail = f"cost by preferred device under CPU_AND_NE: {shares}"
    return (
        "pass" if enumerated_ane >= 0.5 else "fail"
    ), f"enumerated model ANE share {enumerated_ane:.2f}; {detail}"


def _median_predict_ms(compiled: str, compute_units: Any, length: int, n: int = 20) -> float:
    import coremltools as ct
    import numpy as np

    model = ct.models.CompiledMLModel(compiled, compute_units=compute_units)
    x = {"x": np.random.default_rng(1).standard_normal((1, length, ATTENTION_D)).astype(np.float32)}
    for _ in range(3):
        model.predict(x)
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        model.predict(x)
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    return times[len(times) // 2] / 1e6


def _macmon_ane_power(during: Callable[[], object]) -> tuple[list[float], str]:
    """``ane_power`` samples (W) from ``macmon pipe`` while `during` runs, if macmon is installed."""
    import json
    import subprocess

    exe = shutil.which("macmon")
    if exe is None:
        during()
        return [], "macmon not installed"
    proc = subprocess.Popen([exe, "pipe", "-s", "3", "-i", "500"], stdout=subprocess.PIPE, text=True)
    try:
        during()
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    values = []
    for line in out.splitlines():
        try:
            values.append(float(json.loads(line)["ane_power"]))
        except (ValueError, KeyError, TypeError):
            continue
    return values, (f"macmon ane_power {values} W" if values else f"macmon gave no ane_power: {out[:200]!r}")


def check_ane_from_ssh() -> CheckResult:
    """F2: is the ANE used from this (possibly non-GUI SSH) session? CPU_ONLY vs CPU_AND_NE."""
    import coremltools as ct

    models = _mac_models()
    cases = [("enumerated", n) for n in ENUMERATED_LENGTHS] + [("range", RANGE_DEFAULT), ("range", 256)]
    rows, speedups = [], {}
    for kind, length in cases:
        cpu = _median_predict_ms(models.compiled[kind], ct.ComputeUnit.CPU_ONLY, length)
        ane = _median_predict_ms(models.compiled[kind], ct.ComputeUnit.CPU_AND_NE, length)
        speedups[(kind, length)] = cpu / ane if ane > 0 else 0.0
        rows.append(f"{kind} L={length}: CPU_ONLY {cpu:.3f} ms, CPU_AND_NE {ane:.3f} ms")
    watts, power_note = _macmon_ane_power(
        lambda: _median_predict_ms(models.compiled["enumerated"], ct.ComputeUnit.CPU_AND_NE, 128, n=200)
    )
    # Evidence, not proof: CPU_AND_NE clearly faster than CPU_ONLY, or the ANE drawing power.
    used = speedups[("enumerated", ENUMERATED_LENGTHS[0])] >= 1.1 or (bool(watts) and max(watts) > 0)
    detail = f"{'; '.join(rows)}; {power_note}; SSH session: {'SSH_CONNECTION' in os.environ}"
    return ("pass", detail) if used else ("fail", f"no evidence of ANE use: {detail}")


def check_load_duration() -> CheckResult:
    """F3: load_duration_in_nano_seconds vs wall time, first vs second load."""
    import coremltools as ct

    package = _mac_models().packages["enumerated"]
    rows = []
    for attempt in ("first", "second"):
        t0 = time.perf_counter_ns()
        model = ct.models.MLModel(package, compute_units=ct.ComputeUnit.CPU_AND_NE)
        wall = time.perf_counter_ns() - t0
        load = getattr(model, "load_duration_in_nano_seconds", None)
        rows.append((attempt, wall, load))
        del model
    detail = "; ".join(
        f"{a} load: wall {w / 1e6:.1f} ms, load_duration {(ld or 0) / 1e6:.1f} ms" for a, w, ld in rows
    )
    ok = all(isinstance(ld, int) and 0 < ld <= w for _, w, ld in rows)
    return ("pass" if ok else "fail"), detail


def default_checks() -> list[Check]:
    """Every check, in the order a reader wants them (docs/PLATFORM.md, "Selftest checks")."""
    mac = "macOS only"
    return [
        Check("python_version", check_python_version),
        Check("native_arm64", check_native_arm64, macos="MLX wheels need a native arm64 Python"),
        Check("numpy", check_numpy),
        Check("mlx", check_mlx),
        Check(
            "mlx_metal", check_mlx_metal, macos="Metal (mx.metal.is_available) exists only on Apple silicon"
        ),
        Check("coremltools", check_coremltools),
        Check("ct_target_alias", check_target_alias),
        Check("compute_plan_import", check_compute_plan_import),
        Check(
            "macos_version_compute_plan", check_macos_for_compute_plan, macos="MLComputePlan needs macOS 14.4"
        ),
        Check("ane_cores", check_ane_cores, macos="MLComputeDevice (Core ML framework)"),
        Check(
            "f1_compute_plan_attention",
            check_compute_plan_attention,
            macos="MLComputePlan (Core ML framework)",
        ),
        Check("f2_ane_from_ssh", check_ane_from_ssh, macos="Core ML prediction on the Neural Engine"),
        Check("f3_load_duration", check_load_duration, macos="Core ML model loading"),
        Check("f4_thermal_notify", check_thermal_notify, macos=f"Darwin notify key ({mac})"),
        Check("f4_thermal_processinfo", check_thermal_processinfo, macos=f"NSProcessInfo ({mac})"),
        Check("f4_pmset_therm", check_pmset_therm, macos=f"pmset ({mac})"),
        Check("f4_pmset_settings", check_pmset_settings, macos=f"pmset ({mac})"),
        Check("f4_pmset_batt", check_pmset_batt, macos=f"pmset ({mac})"),
        Check("energy_ioreport", check_energy_ioreport, macos=f"libIOReport ({mac})"),
        Check("energy_macmon", check_energy_macmon, macos=f"macmon reads IOReport and SMC ({mac})"),
        Check("energy_mactop", check_energy_mactop, macos=f"mactop reads IOReport and SMC ({mac})"),
        Check("energy_powermetrics", check_energy_powermetrics, macos=f"powermetrics ({mac})"),
        Check("f5_remote_path", check_remote_path),
        Check("f6_sysctl_formats", check_sysctl_formats, macos=f"Darwin sysctl names ({mac})"),
        Check("f7_signal_handling", check_signal_handling),
        Check("facts", check_facts),
    ]
