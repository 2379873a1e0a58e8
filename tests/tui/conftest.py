"""TUI-only fixtures: bounded waits that replace sleeps. The sshd fleet lives in tests/conftest.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot

WAIT_S = 30.0
"""Upper bound for any one wait: probes over loopback take about a second; a hang fails loudly."""

Settle = Callable[[Pilot[object]], Awaitable[None]]
WaitUntil = Callable[[Pilot[object], Callable[[], bool], str], Awaitable[None]]


@pytest.fixture
def settle() -> Settle:
    """Wait until every worker has finished, then let the posted messages be handled."""

    async def _settle(pilot: Pilot[object]) -> None:
        await asyncio.wait_for(pilot.app.workers.wait_for_complete(), WAIT_S)
        await pilot.pause()
        await pilot.pause()

    return _settle


@pytest.fixture
def wait_until() -> WaitUntil:
    """Poll a condition between message-queue turns, failing with `what` after WAIT_S.

    For states reached while a worker is still running (e.g. a dialog the worker awaits), where
    waiting for the workers to complete would wait forever.
    """

    async def _wait_until(pilot: Pilot[object], condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {WAIT_S:.0f} s waiting for {what}")
            await pilot.pause(0.05)

    return _wait_until
