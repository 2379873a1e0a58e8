"""One process at a time works on a run: an flock'd lock file beside the store, naming its holder.

Two `sweep --resume RUN` at once would each take the other's running cells for the remains of a
dead sweep and mark them `lost`. So whatever writes a run's cells (a new sweep from its
`create_run`, a resume before it starts) holds ``<store>.run-<id>.lock``: an exclusive
`flock` on the file, whose content names the holder (pid, host, start time) for the refusal.

A holder that dies (crash, SIGKILL, power cut) loses its flock with its file descriptors, so its
lock is free at once; the next process takes it over and says whose it was. No heartbeat, no
pid guessing: the kernel knows which locks are held.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from fleet_tui.store.records import StoreError, now_iso


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a run's lock."""

    pid: int
    host: str
    started_at: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.started_at[:19].replace('T', ' ')} UTC"


class RunLockedError(StoreError):
    """Another live process holds the run's lock; `holder` names it when the file says."""

    def __init__(self, run_id: int, path: Path, holder: LockHolder | None) -> None:
        who = holder.describe() if holder is not None else "a process that has not yet written its name"
        super().__init__(
            f"run {run_id} is in use by another fleet-tui ({who}; lock {path}): wait for it to finish "
            "or stop it, then resume. A lock whose process died is taken over automatically."
        )
        self.run_id = run_id
        self.holder = holder


def lock_path(store_path: Path, run_id: int) -> Path:
    return store_path.with_name(f"{store_path.name}.run-{run_id}.lock")


class RunLock:
    """A held run lock; `release()` (or closing the store) gives it back."""

    def __init__(self, run_id: int, path: Path, fd: int, previous: LockHolder | None) -> None:
        self.run_id = run_id
        self.path = path
        self._fd: int | None = fd
        self.previous = previous
        """The holder named in the file when it was taken: a process that died holding it."""

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink while still holding the flock: a waiter that opened the old file then sees,
        # after locking, that the path is gone or another file and tries again (acquire_run_lock).
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def acquire_run_lock(store_path: Path, run_id: int) -> RunLock:
    """Hold run `run_id`'s lock. Raises RunLockedError if a live process holds it, StoreError if
    the lock file cannot be made."""
    path = lock_path(store_path, run_id)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the run lock: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(run_id, path, holder) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"{path}: cannot lock: {exc.strerror or exc}") from None
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder released (and unlinked) it between our open and our flock
    previous = _read_holder(fd)
    me = LockHolder(os.getpid(), socket.gethostname(), now_iso())
    data = json.dumps({"pid": me.pid, "host": me.host, "started_at": me.started_at}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    return RunLock(run_id, path, fd, previous)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _read_holder(fd: int) -> LockHolder | None:
    try:
        raw = json.loads(os.pread(fd, 4096, 0) or b"null")
        return LockHolder(int(raw["pid"]), str(raw["host"]), str(raw["started_at"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None
