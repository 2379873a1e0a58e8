"""Energy readers (macmon, mactop, powermetrics, IOReport) and the energy arithmetic.

Stdlib only: part of the agent core. The sweep's entry points:

- `select_reader(choice, interval_ms)` -> `Selection` (a started reader + why others were skipped);
- `EnergyTrace(reader, selection.first_samples)`: ``collect()``, ``wait_covered(end_ns, s)``,
  ``idle(start, end)`` -> `IdleBaseline`, ``run(start, end, inferences, idle)`` -> `RunEnergy`;
- `stop_all_readers()` for a last-resort cleanup.
"""

from node_agent.energy.arithmetic import (
    IdleBaseline,
    RunEnergy,
    WindowEnergy,
    counter_window_energy,
    idle_baseline,
    min_window_ns,
    power_window_energy,
    run_energy,
    window_energy,
)
from node_agent.energy.auto import AUTO_ORDER, ENERGY_CHOICES, Selection, make_reader, select_reader
from node_agent.energy.base import (
    SOC_RAILS,
    EnergyDelta,
    EnergyReader,
    PowerSample,
    ReaderError,
    ReaderInfo,
    ReaderUnavailable,
    Sample,
)
from node_agent.energy.child import stop_all_readers
from node_agent.energy.trace import EnergyTrace

__all__ = [
    "AUTO_ORDER",
    "ENERGY_CHOICES",
    "SOC_RAILS",
    "EnergyDelta",
    "EnergyReader",
    "EnergyTrace",
    "IdleBaseline",
    "PowerSample",
    "ReaderError",
    "ReaderInfo",
    "ReaderUnavailable",
    "RunEnergy",
    "Sample",
    "Selection",
    "WindowEnergy",
    "counter_window_energy",
    "idle_baseline",
    "make_reader",
    "min_window_ns",
    "power_window_energy",
    "run_energy",
    "select_reader",
    "stop_all_readers",
    "window_energy",
]
