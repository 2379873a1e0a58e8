"""The reader interface, its samples and its errors.

A reader is started at an interval, streams samples stamped with the agent's monotonic clock
(`time.monotonic_ns()`) when they arrive, and is stopped. Two kinds of sample exist:

- `PowerSample`: watts per rail, each the average over the interval that *ends* at ``t_ns``
  (macmon, mactop, powermetrics print one per interval);
- `EnergyDelta`: joules of one rail counted between ``span_start_ns`` and ``t_ns`` (the
  IOReport counters, read directly).

Rails are named the same for every reader: ``cpu``, ``gpu``, ``ane``, ``dram``, ``gpu_sram``,
``system`` (the whole machine, where the reader has it) and a few reader-specific extras
(``package``, ``combined``). "SoC" power is computed from `SOC_RAILS` by the arithmetic, so it
means the same thing whichever reader produced it.

Stdlib only: this runs in the agent core.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

SOC_RAILS: Final = ("cpu", "gpu", "ane")
"""The rails summed into the SoC figure: the compute blocks, as macmon's ``all_power`` and
powermetrics' ``Combined Power`` count them; DRAM is reported as its own rail."""
IOREPORT_PUBLISH_CADENCE_MS: Final = 2000
"""Some chips publish their mJ IOReport energy channels only about every 2 s; every reader
built on IOReport (macmon, mactop, ioreport) inherits that lumpiness."""
MAX_PENDING_SAMPLES: Final = 50_000
"""Samples waiting to be collected (10 min of IOReport deltas at 100 ms); more means nobody is
collecting: a reader error, not unbounded growth."""


@dataclass(frozen=True, slots=True)
class PowerSample:
    """Average watts per rail over the interval that ends at ``t_ns`` (agent monotonic ns).

    ``interval_ns`` is the reader's own length of that interval when it prints one (or the
    requested interval); the arithmetic uses it only for the first sample of a stream.
    """

    t_ns: int
    watts: dict[str, float]
    line_no: int = 0
    interval_ns: int | None = None


@dataclass(frozen=True, slots=True)
class EnergyDelta:
    """Joules of one rail counted in (``span_start_ns``, ``t_ns``] (agent monotonic ns)."""

    t_ns: int
    span_start_ns: int
    rail: str
    joules: float
    channel: str = ""


Sample = PowerSample | EnergyDelta


class ReaderError(Exception):
    """A reader produced something it should not have: it names the reader and the line.

    Raised for a line that does not parse, a line over the length limit, a flood of lines,
    a reader process that exits early, or a failing native call. Never a crash, never a zero.
    """

    def __init__(self, reader: str, message: str, *, line_no: int | None = None, line: str | None = None):
        self.reader = reader
        self.line_no = line_no
        self.line = None if line is None else printable(line[:200])
        where = f" line {line_no}" if line_no is not None else ""
        shown = f": {self.line!r}" if self.line else ""
        super().__init__(f"{reader}{where}: {message}{shown}")


class ReaderUnavailable(Exception):
    """The reader cannot run on this node; the message says why (for ``auto``'s record)."""


@dataclass
class ReaderInfo:
    """What is recorded with every energy result: which reader, which version, which meaning."""

    name: str
    version: str | None = None
    interval_ms: int = 0
    publish_cadence_ms: int = 0
    kind: str = "power"
    """"power" (PowerSample stream) or "counter" (EnergyDelta stream)."""
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "interval_ms": self.interval_ms,
            "publish_cadence_ms": self.publish_cadence_ms,
            "kind": self.kind,
            "notes": dict(self.notes),
        }


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with control characters replaced: a reader's output is untrusted."""
    return _CONTROL.sub("?", text)


_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """The first ``X.Y[.Z]`` in a ``--version`` output (``macmon 0.6.1``, ``mactop version: v2.1.3``)."""
    match = _VERSION.search(text or "")
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def number(value: Any) -> float | None:
    """A finite, non-negative JSON number as float, else None (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    if result != result or result in (float("inf"), float("-inf")) or result < 0:
        return None
    return result


class EnergyReader(ABC):
    """One power/energy source: ``start()``, collect with ``poll()``, ``stop()`` (idempotent).

    Use it as a context manager so it is stopped however the block is left (an exception,
    KeyboardInterrupt from the agent's SIGINT). Samples are queued by a background thread and
    handed out by `poll`; an error found by that thread is raised by the next `poll` once the
    samples before it have been handed out.
    """

    name: str = "?"
    publish_cadence_ms: int = 0
    kind: str = "power"

    def __init__(self, interval_ms: int) -> None:
        if interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, not {interval_ms}")
        self.interval_ms = interval_ms
        self._queue: deque[Sample] = deque()
        self._cond = threading.Condition()
        self._error: ReaderError | None = None
        self._started = False
        self._stopped = False
        self._version: str | None = None
        self._version_read = False
        self.notes: dict[str, Any] = {}

    # --- what each reader provides ------------------------------------------------------

    @abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when this reader can run here, else why not (tool missing, not root, not macOS)."""

    @abstractmethod
    def read_version(self) -> str | None:
        """The reader's version string (the tool's ``--version``, the OS build), or None."""

    @abstractmethod
    def _start(self) -> None:
        """Begin producing samples (spawn the process, start the sampling thread)."""

    @abstractmethod
    def _stop(self) -> None:
        """Stop producing samples and release everything; called at most once."""

    # --- the common part ----------------------------------------------------------------

    def version(self) -> str | None:
        if not self._version_read:
            self._version = self.read_version()
            self._version_read = True
        return self._version

    def note(self, key: str, value: Any, *, overwrite: bool = True) -> None:
        """Record a fact for the result (a sampling thread may write while `info` reads)."""
        with self._cond:
            if overwrite or key not in self.notes:
                self.notes[key] = value

    def info(self) -> ReaderInfo:
        with self._cond:
            notes = dict(self.notes)
        return ReaderInfo(
            name=self.name,
            version=self.version(),
            interval_ms=self.interval_ms,
            publish_cadence_ms=max(self.publish_cadence_ms, self.interval_ms),
            kind=self.kind,
            notes=notes,
        )

    def start(self) -> None:
        """Start sampling. Raises `ReaderUnavailable` if it cannot run; starts at most once."""
        if self._started:
            return
        reason = self.unavailable_reason()
        if reason is not None:
            raise ReaderUnavailable(reason)
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop and release the reader; safe to call any number of times, from any thread."""
        with self._cond:
            if self._stopped:
                return
            self._stopped = True
            self._cond.notify_all()
        if self._started:
            self._stop()

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def error(self) -> ReaderError | None:
        return self._error

    def poll(self, timeout_s: float = 0.0) -> list[Sample]:
        """The samples that arrived since the last call, waiting up to `timeout_s` for one.

        Raises the reader's `ReaderError` once the samples queued before it are handed out.
        """
        with self._cond:
            if not self._queue and self._error is None and not self._stopped and timeout_s > 0:
                self._cond.wait(timeout_s)
            samples = list(self._queue)
            self._queue.clear()
            if not samples and self._error is not None:
                raise self._error
            return samples

    def _push(self, sample: Sample) -> None:
        with self._cond:
            if self._error is not None or self._stopped:
                return
            if len(self._queue) >= MAX_PENDING_SAMPLES:
                self._error = ReaderError(self.name, f"more than {MAX_PENDING_SAMPLES} samples not collected")
            else:
                self._queue.append(sample)
            self._cond.notify_all()

    def _fail(self, error: ReaderError) -> None:
        """Record the first error; the reader stops producing (the caller stops the source)."""
        with self._cond:
            if self._error is None and not self._stopped:
                self._error = error
            self._cond.notify_all()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
