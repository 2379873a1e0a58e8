"""Choosing a reader: by name, or ``auto`` (the first that works, with why the others did not)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from node_agent.energy.base import EnergyReader, ReaderError, ReaderUnavailable, Sample
from node_agent.energy.ioreport import IOReportReader
from node_agent.energy.macmon import MacmonReader
from node_agent.energy.mactop import MactopReader
from node_agent.energy.powermetrics import PowermetricsReader

READERS: Final[dict[str, Callable[[int], EnergyReader]]] = {
    "ioreport": IOReportReader,
    "macmon": MacmonReader,
    "mactop": MactopReader,
    "powermetrics": PowermetricsReader,
}
AUTO_ORDER: Final = ("ioreport", "macmon", "mactop", "powermetrics")
ENERGY_CHOICES: Final = ("auto", "off", *AUTO_ORDER)
"""The values of the spec's ``[measure] energy``."""
FIRST_SAMPLE_EXTRA_S: Final = 3.0
"""How long past one interval a reader may take to deliver its first sample when probed."""


def make_reader(name: str, interval_ms: int) -> EnergyReader:
    """A reader by its spec name (not started); ValueError for an unknown name."""
    try:
        factory = READERS[name]
    except KeyError:
        raise ValueError(
            f"unknown energy reader {name!r}; choose one of {', '.join(ENERGY_CHOICES)}"
        ) from None
    return factory(interval_ms)


@dataclass
class Selection:
    """The started reader (None if none works), the samples seen while probing it, and why
    each reader before it was skipped: {name: reason}."""

    reader: EnergyReader | None
    skipped: dict[str, str] = field(default_factory=dict)
    first_samples: list[Sample] = field(default_factory=list)

    def record(self) -> dict[str, object]:
        return {
            "reader": None if self.reader is None else self.reader.info().to_dict(),
            "skipped": dict(self.skipped),
        }


def start_first_working(
    names: Sequence[str],
    interval_ms: int,
    *,
    factory: Callable[[str, int], EnergyReader] = make_reader,
    first_sample_timeout_s: float | None = None,
) -> Selection:
    """Start each reader in turn until one delivers a first sample; the others are recorded.

    The returned reader is running (stop it, or use it as a context manager); the first
    samples it gave are in ``first_samples`` so none is lost.
    """
    skipped: dict[str, str] = {}
    timeout = (
        first_sample_timeout_s
        if first_sample_timeout_s is not None
        else interval_ms / 1000 + FIRST_SAMPLE_EXTRA_S
    )
    for name in names:
        reader = factory(name, interval_ms)
        try:
            reader.start()
            samples = _first_samples(reader, timeout)
        except ReaderUnavailable as exc:
            skipped[name] = str(exc)
            reader.stop()
            continue
        except ReaderError as exc:
            skipped[name] = f"failed: {exc}"
            reader.stop()
            continue
        except BaseException:
            reader.stop()
            raise
        if not samples:
            skipped[name] = f"no sample within {timeout:.1f} s"
            reader.stop()
            continue
        return Selection(reader, skipped, samples)
    return Selection(None, skipped)


def _first_samples(reader: EnergyReader, timeout_s: float) -> list[Sample]:
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return []
        samples = reader.poll(timeout_s=min(remaining, 0.25))
        if samples:
            return samples


def select_reader(
    choice: str,
    interval_ms: int,
    *,
    factory: Callable[[str, int], EnergyReader] = make_reader,
    first_sample_timeout_s: float | None = None,
) -> Selection:
    """The spec's ``energy`` choice: "off" -> no reader; "auto" -> `AUTO_ORDER`; else that one."""
    if choice == "off":
        return Selection(None, {})
    if choice not in ENERGY_CHOICES:
        raise ValueError(f"unknown energy reader {choice!r}; choose one of {', '.join(ENERGY_CHOICES)}")
    names = AUTO_ORDER if choice == "auto" else (choice,)
    return start_first_working(
        names, interval_ms, factory=factory, first_sample_timeout_s=first_sample_timeout_s
    )
