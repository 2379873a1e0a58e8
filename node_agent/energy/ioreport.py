"""A stdlib ``ctypes`` reader of the IOReport "Energy Model" counters: no tool, no sudo.

It subscribes to the channels of the "Energy Model" group of ``/usr/lib/libIOReport.dylib``,
takes a sample every interval, and turns each channel's counter delta into joules by its
unit label (mJ, uJ, nJ). Channels are grouped into rails by name:

- ``CPU Energy`` -> cpu, or where the chip has no package channel the ``DIE_<n>_CPU Energy``
  channels (one per die on an Ultra); never both;
- ``GPU Energy`` (nJ) -> gpu; only where that channel is absent the ``GPU<n>`` channels, and
  ``GPU<n>_<m>`` only where there is no ``GPU<n>`` either;
- ``ANE`` / ``DRAM`` -> ane / dram, else ``ANE<n>`` / ``DRAM<n>``, else ``ANE<n>_<m>`` /
  ``DRAM<n>_<m>``: only the least specific family present, so a per-die sum is never added to
  a package total; ``GPU SRAM...`` -> gpu_sram (not part of the SoC sum);
- every other channel (per-core, clusters, caches, DTL telemetry, PCIe, ISP) is not a rail.

Some chips publish the mJ channels in batches, about every 2 s (and one headless chip has been
seen publishing them every 30 min), while the nJ GPU channel moves every sample: between
publications a channel's delta is zero. Each published delta therefore covers the span since
that channel's previous publication (`ChannelSpanTracker`), and the arithmetic apportions it
over that span. A rail channel that stays at zero is known to be idle (the ANE when unused)
only when another channel with the same unit moved in the same sample, i.e. its batch was
published without it; then it reports a zero delta. Otherwise its time stays uncovered and
no window over it is published: a zero that only means "not published yet" is never read.

The native part cannot run off macOS; it is written against these signatures (the same ones
the public IOReport users declare) and checked by ``selftest`` on a Mac:

    CFDictionaryRef IOReportCopyChannelsInGroup(CFStringRef group, CFStringRef subgroup,
                                                uint64_t, uint64_t, uint64_t);
    IOReportSubscriptionRef IOReportCreateSubscription(void *, CFMutableDictionaryRef desired,
                                                CFMutableDictionaryRef *subscribed,
                                                uint64_t channel_id, CFTypeRef);
    CFDictionaryRef IOReportCreateSamples(IOReportSubscriptionRef, CFMutableDictionaryRef, CFTypeRef);
    CFDictionaryRef IOReportCreateSamplesDelta(CFDictionaryRef prev, CFDictionaryRef cur, CFTypeRef);
    CFStringRef IOReportChannelGetChannelName(CFDictionaryRef);
    CFStringRef IOReportChannelGetUnitLabel(CFDictionaryRef);
    int64_t IOReportSimpleGetIntegerValue(CFDictionaryRef, int32_t index);

Importing this module is safe anywhere: nothing is loaded until a reader starts.
"""

from __future__ import annotations

import ctypes
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, Final

from node_agent.energy.base import IOREPORT_PUBLISH_CADENCE_MS, EnergyDelta, EnergyReader, ReaderError

IOREPORT_PATH: Final = "/usr/lib/libIOReport.dylib"
COREFOUNDATION_PATH: Final = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
ENERGY_GROUP: Final = "Energy Model"
K_CF_STRING_ENCODING_UTF8: Final = 0x08000100
UNIT_COUNTS_PER_JOULE: Final = {"mJ": 1e3, "uJ": 1e6, "\u00b5J": 1e6, "\u03bcJ": 1e6, "nJ": 1e9}
"""Counts per joule of each unit label; ``\u00b5J`` (micro sign) and ``\u03bcJ`` (Greek mu) too.
(Dividing keeps 23296 mJ exactly 23.296 J.)"""
MIN_INTERVAL_MS: Final = 50


def energy_joules(value: int, unit: str) -> float:
    """A counter delta in joules; `ValueError` for a unit that is not an energy unit."""
    per_joule = UNIT_COUNTS_PER_JOULE.get(unit.strip())
    if per_joule is None:
        raise ValueError(f"not an energy unit: {unit!r}")
    return value / per_joule


def _family(name: str, prefix: str) -> int | None:
    """0 for ``prefix``, 1 for ``prefix<n>``, 2 for ``prefix<n>_<m>``; None for anything else
    (``ANE0_SRAM`` is a part of a block, not the block)."""
    rest = name[len(prefix) :] if name.startswith(prefix) else None
    if rest is None:
        return None
    if rest == "":
        return 0
    if re.fullmatch(r"\d+", rest):
        return 1
    if re.fullmatch(r"\d+_\d+", rest):
        return 2
    return None


def classify_channels(names: Iterable[str]) -> dict[str, str]:
    """Channel name -> rail for the channels that are summed; the others are left out.

    Decided over the whole channel list, so that of a package channel and its per-die
    channels only one family feeds a rail.
    """
    names = list(dict.fromkeys(names))
    candidates: dict[str, list[tuple[int, str]]] = {}  # rail -> [(family, name)]
    for name in names:
        if name == "GPU Energy":
            candidates.setdefault("gpu", []).append((-1, name))  # before any GPU block channel
        elif name == "CPU Energy":
            candidates.setdefault("cpu", []).append((0, name))
        elif name.endswith("CPU Energy") and name.startswith("DIE_"):
            candidates.setdefault("cpu", []).append((1, name))
        elif name.startswith("GPU SRAM"):
            family = _family(name, "GPU SRAM")
            if family is not None:
                candidates.setdefault("gpu_sram", []).append((family, name))
        else:
            for prefix, rail in (("ANE", "ane"), ("DRAM", "dram"), ("GPU", "gpu")):
                family = _family(name, prefix)
                if family is not None and not (rail == "gpu" and family == 0):  # a bare "GPU" is not energy
                    candidates.setdefault(rail, []).append((family, name))
                    break
    rails: dict[str, str] = {}
    for rail, found in candidates.items():
        least = min(family for family, _ in found)
        rails.update({name: rail for family, name in found if family == least})
    return rails


def group_energies(items: Iterable[tuple[str, str, int]], rails: dict[str, str]) -> dict[str, float]:
    """Joules per rail from (channel, unit, counter delta) triples of one sample."""
    totals: dict[str, float] = {}
    for name, unit, value in items:
        rail = rails.get(name)
        if rail is not None:
            totals[rail] = totals.get(rail, 0.0) + energy_joules(value, unit)
    return totals


class ChannelSpanTracker:
    """Gives each channel's published delta the span since its previous publication."""

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.last_publish: dict[str, int] = {}
        self.spans_ns: dict[str, list[int]] = {}

    def update(
        self, channel: str, rail: str, joules: float, t_ns: int, *, batch_published: bool
    ) -> EnergyDelta | None:
        """The delta to report for `channel` at `t_ns`, or None while it is unpublished.

        `batch_published`: another channel with the same unit moved in this sample, so a zero
        here is a real zero (the rail idle), not a publication still to come.
        """
        if joules < 0:
            raise ValueError(f"{channel}: counter went backwards by {-joules} J")
        if joules == 0 and not batch_published:
            return None  # not published yet: the next publication covers this time
        last = self.last_publish.get(channel, self.start_ns)
        self.last_publish[channel] = t_ns
        if joules > 0:
            spans = self.spans_ns.setdefault(channel, [])
            spans.append(t_ns - last)
            del spans[:-50]
        return EnergyDelta(t_ns=t_ns, span_start_ns=last, rail=rail, joules=joules, channel=channel)

    def observed_cadence_ms(self) -> float | None:
        """The median publication span of the slowest channel, in ms (None before any)."""
        medians = [sorted(s)[len(s) // 2] for s in self.spans_ns.values() if len(s) >= 3]
        return max(medians) / 1e6 if medians else None


def sample_deltas(
    items: Iterable[tuple[str, str, int]], rails: dict[str, str], tracker: ChannelSpanTracker, t_ns: int
) -> list[EnergyDelta]:
    """The deltas one IOReport delta sample yields: (channel, unit, counter delta) triples."""
    items = list(items)
    moved_units = {unit for _, unit, value in items if value > 0}
    deltas = []
    for name, unit, value in items:
        rail = rails.get(name)
        if rail is None:
            continue
        delta = tracker.update(
            name, rail, energy_joules(value, unit), t_ns, batch_published=unit in moved_units
        )
        if delta is not None:
            deltas.append(delta)
    return deltas


# --- the native part (macOS only) -------------------------------------------------------------


class _Native:
    """libIOReport and CoreFoundation with typed signatures; raises OSError where absent."""

    def __init__(self) -> None:
        cf = ctypes.CDLL(COREFOUNDATION_PATH)
        io = ctypes.CDLL(IOREPORT_PATH)
        vp, u64, i64, i32 = ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64, ctypes.c_int32
        index = ctypes.c_long  # CFIndex

        def typed(lib: Any, name: str, restype: Any, argtypes: list[Any]) -> Any:
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
            return function

        self.CFStringCreateWithCString = typed(
            cf, "CFStringCreateWithCString", vp, [vp, ctypes.c_char_p, ctypes.c_uint32]
        )
        self.CFStringGetCString = typed(
            cf, "CFStringGetCString", ctypes.c_ubyte, [vp, ctypes.c_char_p, index, ctypes.c_uint32]
        )
        self.CFRelease = typed(cf, "CFRelease", None, [vp])
        self.CFDictionaryGetCount = typed(cf, "CFDictionaryGetCount", index, [vp])
        self.CFDictionaryCreateMutableCopy = typed(cf, "CFDictionaryCreateMutableCopy", vp, [vp, index, vp])
        self.CFDictionaryGetValue = typed(cf, "CFDictionaryGetValue", vp, [vp, vp])
        self.CFArrayGetCount = typed(cf, "CFArrayGetCount", index, [vp])
        self.CFArrayGetValueAtIndex = typed(cf, "CFArrayGetValueAtIndex", vp, [vp, index])

        self.IOReportCopyChannelsInGroup = typed(
            io, "IOReportCopyChannelsInGroup", vp, [vp, vp, u64, u64, u64]
        )
        self.IOReportCreateSubscription = typed(
            io, "IOReportCreateSubscription", vp, [vp, vp, ctypes.POINTER(vp), u64, vp]
        )
        self.IOReportCreateSamples = typed(io, "IOReportCreateSamples", vp, [vp, vp, vp])
        self.IOReportCreateSamplesDelta = typed(io, "IOReportCreateSamplesDelta", vp, [vp, vp, vp])
        self.IOReportChannelGetChannelName = typed(io, "IOReportChannelGetChannelName", vp, [vp])
        self.IOReportChannelGetUnitLabel = typed(io, "IOReportChannelGetUnitLabel", vp, [vp])
        self.IOReportSimpleGetIntegerValue = typed(io, "IOReportSimpleGetIntegerValue", i64, [vp, i32])
        self._channels_key: int | None = None

    def cfstr(self, text: str) -> int:
        ref = self.CFStringCreateWithCString(None, text.encode(), K_CF_STRING_ENCODING_UTF8)
        if not ref:
            raise OSError(f"CFStringCreateWithCString({text!r}) failed")
        return int(ref)

    def pystr(self, ref: int | None) -> str:
        if not ref:
            return ""
        buffer = ctypes.create_string_buffer(256)
        if not self.CFStringGetCString(ref, buffer, len(buffer), K_CF_STRING_ENCODING_UTF8):
            return ""
        return buffer.value.decode("utf-8", "replace")

    def _channel_array(self, dictionary: int) -> list[int]:
        """The channel dictionaries under "IOReportChannels" (a CFArray) of a channels,
        samples or delta dictionary."""
        if self._channels_key is None:
            self._channels_key = self.cfstr("IOReportChannels")  # kept for the process's life
        array = self.CFDictionaryGetValue(dictionary, self._channels_key)
        if not array:
            return []
        items = (self.CFArrayGetValueAtIndex(array, i) for i in range(int(self.CFArrayGetCount(array))))
        return [int(item) for item in items if item]

    def channel_units(self, channels: int) -> dict[str, str]:
        """name -> unit label of every channel of a channels dictionary (no values read)."""
        units = {}
        for item in self._channel_array(channels):
            name = self.pystr(self.IOReportChannelGetChannelName(item))
            units[name] = self.pystr(self.IOReportChannelGetUnitLabel(item)).strip()
        return units

    def channel_items(self, delta: int) -> list[tuple[str, str, int]]:
        """(name, unit, integer value) of every channel in a delta dictionary."""
        items = []
        for item in self._channel_array(delta):
            name = self.pystr(self.IOReportChannelGetChannelName(item))
            unit = self.pystr(self.IOReportChannelGetUnitLabel(item)).strip()
            items.append((name, unit, int(self.IOReportSimpleGetIntegerValue(item, 0))))
        return items


class IOReportSubscription:
    """A subscription to the "Energy Model" channels; `sample` / `delta_items` / `close`."""

    def __init__(self, native: _Native) -> None:
        self.native = native
        group = native.cfstr(ENERGY_GROUP)
        try:
            channels = native.IOReportCopyChannelsInGroup(group, None, 0, 0, 0)
        finally:
            native.CFRelease(group)
        if not channels:
            raise OSError(f'IOReportCopyChannelsInGroup("{ENERGY_GROUP}") returned NULL')
        try:
            count = int(native.CFDictionaryGetCount(channels))
            self.channels = native.CFDictionaryCreateMutableCopy(None, count, channels)
        finally:
            native.CFRelease(channels)
        if not self.channels:
            raise OSError("CFDictionaryCreateMutableCopy of the channels failed")
        # The subscribed-channels out-parameter is not released: whether the caller owns it is
        # not documented, and one small leak per reader beats an over-release crash.
        subscribed = ctypes.c_void_p(None)
        self.subscription = native.IOReportCreateSubscription(
            None, self.channels, ctypes.byref(subscribed), 0, None
        )
        if not self.subscription:
            native.CFRelease(self.channels)
            raise OSError("IOReportCreateSubscription returned NULL")

    def sample(self) -> int:
        ref = self.native.IOReportCreateSamples(self.subscription, self.channels, None)
        if not ref:
            raise OSError("IOReportCreateSamples returned NULL")
        return int(ref)

    def delta_items(self, previous: int, current: int) -> list[tuple[str, str, int]]:
        delta = self.native.IOReportCreateSamplesDelta(previous, current, None)
        if not delta:
            raise OSError("IOReportCreateSamplesDelta returned NULL")
        try:
            return self.native.channel_items(delta)
        finally:
            self.native.CFRelease(delta)

    def release(self, ref: int | None) -> None:
        if ref:
            self.native.CFRelease(ref)

    def close(self) -> None:
        for ref in (self.subscription, self.channels):
            self.release(ref)
        self.subscription = self.channels = None


_native_cache: list[_Native | str] = []


def load_native() -> _Native:
    """The native libraries, loaded once; OSError with the reason where they cannot load."""
    if not _native_cache:
        try:
            _native_cache.append(_Native())
        except (OSError, AttributeError) as exc:
            _native_cache.append(f"{type(exc).__name__}: {exc}")
    cached = _native_cache[0]
    if isinstance(cached, str):
        raise OSError(cached)
    return cached


class IOReportReader(EnergyReader):
    """Counter reader: an `EnergyDelta` per published channel per interval (a sampling thread)."""

    name = "ioreport"
    kind = "counter"
    publish_cadence_ms = IOREPORT_PUBLISH_CADENCE_MS

    def __init__(self, interval_ms: int, *, darwin: bool | None = None) -> None:
        super().__init__(max(interval_ms, MIN_INTERVAL_MS))
        self._darwin = sys.platform == "darwin" if darwin is None else darwin
        self._subscription: IOReportSubscription | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self.rails: dict[str, str] = {}
        self.units: dict[str, str] = {}

    def unavailable_reason(self) -> str | None:
        if not self._darwin:
            return "needs macOS (libIOReport)"
        try:
            load_native()
        except OSError as exc:
            return f"cannot load {IOREPORT_PATH} / CoreFoundation: {exc}"
        return None

    def read_version(self) -> str | None:
        """IOReport has no version of its own; the OS build identifies it."""
        from node_agent.thermal import run_command

        build = run_command(["sw_vers", "-buildVersion"]) if self._darwin else None
        return f"macOS build {build.strip()}" if build and build.strip() else None

    def channel_report(self) -> dict[str, Any]:
        """Channels found, their units and rails (for selftest and the record)."""
        return {"rails": dict(self.rails), "units": dict(self.units)}

    def _start(self) -> None:
        first: int | None = None
        try:
            self._subscription = IOReportSubscription(load_native())
            first = self._subscription.sample()
            start_ns = time.monotonic_ns()
            # Names and units from the channel dictionary itself (it holds "IOReportChannels").
            self.units = self._subscription.native.channel_units(self._subscription.channels)
        except Exception as exc:  # OSError, ctypes.ArgumentError: a clear reader error, never a crash
            if self._subscription is not None:
                self._subscription.release(first)
            raise ReaderError(self.name, f"{type(exc).__name__}: {exc}") from None
        self.rails = classify_channels(self.units)
        bad_units = {
            n: u for n, u in self.units.items() if n in self.rails and u not in UNIT_COUNTS_PER_JOULE
        }
        if not self.rails or bad_units:
            self._subscription.release(first)
            problem = (
                f"channels with non-energy units {bad_units}" if bad_units else "no cpu/gpu/ane/dram channel"
            )
            raise ReaderError(self.name, f'"{ENERGY_GROUP}": {problem} among {len(self.units)} channels')
        self.note("channels", len(self.units))
        self.note(
            "rail_channels",
            {r: sorted(n for n, x in self.rails.items() if x == r) for r in set(self.rails.values())},
        )
        self._thread = threading.Thread(
            target=self._run, args=(first, start_ns), name="energy-ioreport", daemon=True
        )
        self._thread.start()

    def _run(self, previous: int, start_ns: int) -> None:
        assert self._subscription is not None
        subscription = self._subscription
        tracker = ChannelSpanTracker(start_ns)
        tick = 0
        try:
            while not self._wake.wait(self.interval_ms / 1000):
                current = subscription.sample()
                t_ns = time.monotonic_ns()
                tick += 1
                try:
                    items = subscription.delta_items(previous, current)
                finally:
                    subscription.release(previous)
                previous = current
                for delta in sample_deltas(items, self.rails, tracker, t_ns):
                    self._push(delta)
                cadence = tracker.observed_cadence_ms()
                if cadence is not None:
                    self.note("observed_publish_ms", round(cadence, 1))
        except Exception as exc:  # OSError, ctypes.ArgumentError, a counter going backwards
            self._fail(ReaderError(self.name, f"{type(exc).__name__}: {exc}", line_no=tick))
        finally:
            subscription.release(previous)

    def _stop(self) -> None:
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if self._subscription is not None and (self._thread is None or not self._thread.is_alive()):
            self._subscription.close()
            self._subscription = None
