"""fleet-tui: the controller. Its core never imports textual (only fleet_tui.app does),
coremltools or mlx (those run in agent subprocesses)."""

__version__ = "0.1.0"
