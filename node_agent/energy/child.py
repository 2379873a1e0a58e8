"""Readers that are a child process of the agent (macmon, mactop, powermetrics).

The child runs in its own process group (so a terminal's Ctrl-C does not hit it behind the
agent's back, and a stop reaches everything it spawned), its stdout is a pipe only the agent
reads, and it is stopped with SIGTERM to the group, then SIGKILL after a grace period, then
reaped. No orphans:

- `EnergyReader` is a context manager and `stop` is idempotent, so the agent's own SIGINT /
  SIGTERM handling (which unwinds the run) stops the reader on the way out;
- every live child is in a registry that an ``atexit`` hook stops (`stop_all_readers`);
- if the agent dies without unwinding (SIGKILL), the pipe's read end closes and the child's
  next write fails (EPIPE / SIGPIPE), which ends macmon, mactop and powermetrics.

Memory is bounded: a line over `MAX_LINE_BYTES`, more lines per second than the interval can
explain, or stderr beyond a small tail are reader errors or dropped, never unbounded growth.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import threading
import time
import weakref
from abc import abstractmethod
from collections import deque
from collections.abc import Sequence
from typing import IO, Final

from node_agent.energy.base import EnergyReader, ReaderError, Sample, printable

MAX_LINE_BYTES: Final = 256 * 1024
"""mactop's JSON line with Thunderbolt details is a few kB; 256 kB is far beyond any real line."""
STDERR_TAIL_BYTES: Final = 4096
TERM_GRACE_S: Final = 2.0
KILL_GRACE_S: Final = 2.0
FLOOD_MIN_LINES_PER_S: Final = 200
"""More lines in one second than max(this, `max_lines_per_interval` per interval) is a flood."""
VERSION_TIMEOUT_S: Final = 5.0

_live: weakref.WeakSet[ChildProcessReader] = weakref.WeakSet()
_live_lock = threading.Lock()


def stop_all_readers() -> None:
    """Stop every child reader still running (atexit, or the agent's last-resort cleanup)."""
    with _live_lock:
        readers = list(_live)
    for reader in readers:
        reader.stop()


atexit.register(stop_all_readers)


def run_version(argv: Sequence[str]) -> str | None:
    """stdout+stderr of a ``--version`` call, printable, or None if it cannot run."""
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    text = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
    return printable(text[:200]) or None


class ChildProcessReader(EnergyReader):
    """A reader that runs ``argv()`` and turns each stdout line into samples with `parse_line`."""

    executable_name: str = "?"
    max_lines_per_interval: int = 20
    """A JSON-lines tool prints one line per interval; a text tool (powermetrics) many more."""

    def __init__(self, interval_ms: int, *, executable: str | None = None) -> None:
        super().__init__(interval_ms)
        self._executable = executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._stderr_tail: deque[bytes] = deque()
        self._stderr_len = 0
        self.lines_read = 0

    # --- for subclasses -----------------------------------------------------------------

    @abstractmethod
    def argv(self, executable: str) -> list[str]:
        """The command line, always with the interval given explicitly."""

    @abstractmethod
    def parse_line(self, line: str, line_no: int, t_ns: int) -> list[Sample]:
        """Samples completed by this line (often none, often one); `ReaderError` if it is bad."""

    def finish(self, line_no: int, t_ns: int) -> list[Sample]:
        """Samples still held when stdout ends (a multi-line format's last block)."""
        return []

    # --- the process --------------------------------------------------------------------

    def executable(self) -> str | None:
        """The given executable if it can run, else the tool found on PATH (None if neither)."""
        if self._executable is not None:
            return self._executable if os.access(self._executable, os.X_OK) else None
        return shutil.which(self.executable_name)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def unavailable_reason(self) -> str | None:
        if self.executable() is None:
            return f"{self.executable_name} not found on PATH"
        return None

    def _start(self) -> None:
        exe = self.executable()
        if exe is None:
            raise ReaderError(self.name, f"{self.executable_name} not found on PATH")
        try:
            self._proc = subprocess.Popen(
                self.argv(exe),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own session and process group (pgid == pid)
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            raise ReaderError(self.name, f"cannot start {exe}: {exc}") from None
        with _live_lock:
            _live.add(self)
        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._read_stdout, args=(self._proc.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self._proc.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.name = f"energy-{self.name}-{'out' if thread is self._threads[0] else 'err'}"
            thread.start()

    def _read_stdout(self, stream: IO[bytes]) -> None:
        line_no = 0
        flood_window: deque[int] = deque()
        flood_limit = max(FLOOD_MIN_LINES_PER_S, self.max_lines_per_interval * 1000 // self.interval_ms)
        try:
            while True:
                raw = stream.readline(MAX_LINE_BYTES + 1)
                t_ns = time.monotonic_ns()  # stamped on arrival, before any parsing
                if not raw:
                    break
                line_no += 1
                self.lines_read = line_no
                if len(raw) > MAX_LINE_BYTES:
                    raise ReaderError(self.name, f"line over {MAX_LINE_BYTES} bytes", line_no=line_no)
                flood_window.append(t_ns)
                while flood_window and t_ns - flood_window[0] > 1_000_000_000:
                    flood_window.popleft()
                if len(flood_window) > flood_limit:
                    raise ReaderError(
                        self.name, f"more than {flood_limit} lines in one second (flood)", line_no=line_no
                    )
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                for sample in self.parse_line(text, line_no, t_ns):
                    self._push(sample)
            for sample in self.finish(line_no, time.monotonic_ns()):
                self._push(sample)
            if not self.stopped:
                self._fail(ReaderError(self.name, f"exited early{self._exit_detail()}", line_no=line_no))
        except ReaderError as exc:
            self._fail(exc)
            self._terminate_quietly()
        except (OSError, ValueError) as exc:  # the pipe closed under us during stop
            if not self.stopped:
                self._fail(ReaderError(self.name, f"reading stdout failed: {exc}", line_no=line_no))
        except Exception as exc:  # a parser bug must still surface as this reader's error
            self._fail(ReaderError(self.name, f"{type(exc).__name__}: {exc}", line_no=line_no))
            self._terminate_quietly()

    def _read_stderr(self, stream: IO[bytes]) -> None:
        try:
            while chunk := stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096):
                self._stderr_tail.append(chunk)
                self._stderr_len += len(chunk)
                while self._stderr_len > STDERR_TAIL_BYTES and len(self._stderr_tail) > 1:
                    self._stderr_len -= len(self._stderr_tail.popleft())
        except (OSError, ValueError):
            pass

    def stderr_tail(self) -> str:
        text = b"".join(self._stderr_tail)[-STDERR_TAIL_BYTES:].decode("utf-8", "replace")
        return printable(text.strip())

    def _exit_detail(self) -> str:
        """The exit status (read without reaping, see `_terminate_group`) and stderr's tail."""
        proc = self._proc
        code: int | None = None
        if proc is not None and hasattr(os, "waitid"):
            deadline = time.monotonic() + 1.0
            while code is None and time.monotonic() < deadline:
                try:
                    result = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    break
                if result is not None:
                    code = result.si_status
                else:
                    time.sleep(0.01)
        tail = self.stderr_tail()
        status = f" (exit status {code})" if code is not None else ""
        return status + (f"; stderr: {tail[-300:]}" if tail else "")

    def _terminate_quietly(self) -> None:
        """After a reader error the process must not keep running until someone calls stop."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)

    def _stop(self) -> None:
        proc = self._proc
        if proc is not None:
            _terminate_group(proc)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)
        with _live_lock:
            _live.discard(self)


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _leader_exited_unreaped(pid: int) -> bool:
    """Has the leader exited? Checked without reaping it, so its pgid cannot be reused yet."""
    try:
        result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return result is not None


def _terminate_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's group, SIGKILL after a grace period, then reap the leader.

    The leader is reaped last: while it is an unreaped zombie its pid (= the group id) cannot
    be reused, so the final SIGKILL to the group can never hit an unrelated process.
    """
    if proc.returncode is not None:
        return
    pgid = proc.pid
    if hasattr(os, "waitid"):
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        while not _leader_exited_unreaped(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
        _signal_group(pgid, signal.SIGKILL)  # stragglers in the group, or a leader ignoring TERM
    else:  # pragma: no cover - both Linux and macOS have waitid
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:  # unkillable (uninterruptible sleep): try once more, then leave it
        proc.kill()
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
