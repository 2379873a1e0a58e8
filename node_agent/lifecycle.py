"""Stopping a job: SIGTERM / SIGHUP / SIGINT and a closed stdin set one stop flag that also
terminates the live worker processes (the agent and each worker use it)."""

from __future__ import annotations

import signal
import subprocess
import threading
from typing import IO


class Stopper:
    """The stop flag plus the live worker processes to terminate when it is set."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self.signum: int | None = None
        self._workers: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        return self.event.is_set()

    def stop(self, reason: str, signum: int | None = None) -> None:
        if not self.event.is_set():
            self.reason, self.signum = reason, signum
            self.event.set()
        self.terminate_workers()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._workers.add(proc)
        if self.event.is_set():
            self.terminate_workers()

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._workers.discard(proc)

    def terminate_workers(self) -> None:
        with self._lock:
            workers = list(self._workers)
        for proc in workers:
            if proc.poll() is None:
                try:
                    proc.terminate()
                except OSError:
                    pass

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: object) -> None:
            self.stop(f"received {signal.Signals(signum).name}", signum)

        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, handler)


def start_stdin_watchdog(stream: IO[str], stopper: Stopper) -> threading.Thread:
    """A daemon thread that keeps reading `stream` and stops the job at EOF."""

    def watch() -> None:
        try:
            while stream.readline():
                pass
        except (OSError, ValueError):
            pass
        stopper.stop("stdin closed (the controller went away)")

    thread = threading.Thread(target=watch, name="stdin-watchdog", daemon=True)
    thread.start()
    return thread
