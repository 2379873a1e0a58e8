"""One sweep at a time per node: a lock file under ``~/.fleet-agent/`` (docs/DESIGN.md, "Wire format").

The lock is a file created with ``O_CREAT | O_EXCL`` holding the holder as JSON
(``pid, host, started, job_id, command``). A lock whose holder pid is dead on this host is stale
and is taken over; a live one makes the caller report ``busy`` with the holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

LOCK_NAME = "lock"


class LockBusy(Exception):
    """The lock is held by a live process; `holder` says who."""

    def __init__(self, holder: dict[str, Any]) -> None:
        super().__init__(f"lock held by pid {holder.get('pid')} on {holder.get('host')}")
        self.holder = holder


def agent_home() -> Path:
    """``~/.fleet-agent`` (created on demand). HOME decides, so tests can isolate it."""
    home = Path(os.path.expanduser("~")) / ".fleet-agent"
    home.mkdir(parents=True, exist_ok=True)
    return home


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # A zombie still answers kill(0); on Linux, look at its state so a reaped-late holder is stale.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class AgentLock:
    """The node's sweep lock. Use as a context manager or call acquire()/release()."""

    def __init__(self, job_id: str, command: str = "run", path: Path | None = None) -> None:
        self.path = path if path is not None else agent_home() / LOCK_NAME
        self.holder: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "job_id": job_id,
            "command": command,
        }
        self.took_over: dict[str, Any] | None = None
        self._held = False

    def acquire(self) -> None:
        """Take the lock, taking over a stale one. Raises LockBusy when a live process holds it."""
        for _attempt in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_holder(self.path)
                if holder is None:
                    # Unreadable: either being written right now or garbage. Give a writer a moment.
                    time.sleep(0.05)
                    holder = _read_holder(self.path)
                if holder is not None and not self._is_stale(holder):
                    raise LockBusy(holder) from None
                self.took_over = holder or {"note": "unreadable lock file"}
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(self.holder, fh)
            self._held = True
            return
        holder = _read_holder(self.path) or {"note": "lock file keeps reappearing"}
        raise LockBusy(holder)

    def _is_stale(self, holder: dict[str, Any]) -> bool:
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return True
        if holder.get("host") not in (None, socket.gethostname()):
            return False  # a home shared with another host: we cannot check that pid
        return not _pid_alive(pid)

    def release(self) -> None:
        """Remove the lock if it is still ours (never someone else's)."""
        if not self._held:
            return
        self._held = False
        current = _read_holder(self.path)
        if current is not None and current.get("pid") == self.holder["pid"]:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> AgentLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
