"""The agent's contention check: other busy processes are flagged, the agent's own never."""

from __future__ import annotations

import os


def test_contention_flags_other_busy_processes_but_never_the_agents_own() -> None:
    from node_agent.runner import contention

    cores = os.cpu_count() or 1
    quiet = {"load_avg": [0.5, 0.5, 0.5], "top_cpu": {"pid": 4242, "command": "worker", "cpu_percent": 99.0}}
    assert contention(quiet, own_pids={4242}) == []  # our own worker at 99% is not contention
    busy = contention(quiet, own_pids={1})
    assert busy == ["worker (pid 4242) uses 99.0% CPU"]
    loaded = {"load_avg": [1.0 + 2.5 * cores, 1, 1], "top_cpu": None}
    assert contention(loaded, own_pids=set()) == [f"load average {1.0 + 2.5 * cores} on {cores} cores"]
    assert contention({"error": "ps failed"}, own_pids=set()) == []
