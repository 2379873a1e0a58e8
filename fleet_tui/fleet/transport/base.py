"""One small interface to a node: run a command, stream a long-running one, put a file, close.

Two implementations: `local` (asyncio subprocess on this machine) and `ssh` (asyncssh, one reused
connection per node). Every failure a caller can act on is a `NodeError` with a `NodeErrorKind`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_tui.config.settings import SshSettings
from fleet_tui.model.states import NodeErrorKind
from node_agent.protocol import MAX_LINE_BYTES, ProtocolError

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node

__all__ = [
    "AgentProcess",
    "CommandResult",
    "NodeError",
    "NodeErrorKind",
    "SshSettings",
    "Transport",
    "as_node_error",
    "OutputTooLong",
    "clip_tail",
    "read_capped",
    "read_lines",
    "read_tail",
]

STDERR_TAIL_CHARS = 4000
"""How much of a command's stderr is kept (the tail is what explains a failure)."""

READ_CHUNK_BYTES = 65536

MAX_OUTPUT_BYTES = 1024 * 1024
"""The most a run-to-completion command (`Transport.run`: checks, hashes, `$HOME`) may print on
stdout; they print a line or two. More is a node fault, stopped before it fills our memory."""


@dataclass(frozen=True)
class HostKeyInfo:
    """A server's host key as fetched (not yet trusted)."""

    node: str
    host: str
    port: int
    key_type: str
    fingerprint: str
    """SHA256:... as `ssh-keygen -l` prints it."""
    line: str
    """The known_hosts line that would trust it (with the trailing newline)."""


class NodeError(Exception):
    """A failure of one node. `str()` reads "<node>: <message>"."""

    def __init__(
        self, kind: NodeErrorKind, node: str, message: str, *, fingerprint: str | None = None
    ) -> None:
        super().__init__(f"{node}: {message}")
        self.kind = kind
        self.node = node
        self.message = message
        self.fingerprint = fingerprint
        """SHA256:... of the server's host key, for host-key errors (shown to the operator)."""

    def to_dict(self) -> dict[str, str | None]:
        return {"kind": str(self.kind), "message": self.message, "fingerprint": self.fingerprint}


def as_node_error(exc: Exception, node: str, doing: str) -> NodeError:
    """Any failure of one node's work as a NodeError, so it stays in that node's result.

    Anything that is not already a NodeError is the controller's own failure (a bug, not a node
    fault): kind `controller_error`, with its exception type in the message, so it is never
    blamed on the node.
    """
    if isinstance(exc, NodeError):
        return exc
    return NodeError(
        NodeErrorKind.CONTROLLER_ERROR,
        node,
        f"{doing} failed in the controller (a bug, not the node): {type(exc).__name__}: {exc}",
    )


@dataclass
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


class AgentProcess(ABC):
    """A running command on a node, with stdin open and stdout streamed as lines."""

    @abstractmethod
    def lines(self) -> AsyncIterator[str]:
        """stdout lines without the trailing newline, until EOF (`read_lines`: whole lines up to
        MAX_LINE_BYTES, a longer one raises ProtocolError)."""

    @abstractmethod
    async def write(self, text: str) -> None:
        """Write to the command's stdin (and drain)."""

    @abstractmethod
    async def close_stdin(self) -> None:
        """Send EOF on stdin."""

    @abstractmethod
    def terminate(self) -> None:
        """Ask the command to stop (SIGTERM). Never raises."""

    @abstractmethod
    def kill(self) -> None:
        """Stop the command now (SIGKILL) and release its channel. Never raises."""

    @abstractmethod
    async def wait(self, timeout: float | None = None) -> int:  # noqa: ASYNC109 - names fixed by the shared interface
        """Wait for exit; the exit status (or -signal). Raises builtin TimeoutError."""

    @abstractmethod
    def stderr_text(self) -> str:
        """The tail of what the command wrote on stderr so far."""


class Transport(ABC):
    """A way to run commands on one node. `connect` is idempotent; `close` releases it."""

    node: Node

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def run(
        self,
        argv: Sequence[str],
        input: str | None = None,  # noqa: A002 - name fixed by the shared interface
        timeout: float | None = None,  # noqa: ASYNC109 - name fixed by the shared interface
    ) -> CommandResult:
        """Run argv to completion. A non-zero exit is a result, not an error.

        stdout is kept up to MAX_OUTPUT_BYTES (more: the command is stopped and a NodeError names
        the limit), stderr only its last STDERR_TAIL_CHARS bytes."""

    @abstractmethod
    async def start(self, argv: Sequence[str]) -> AgentProcess:
        """Start argv with stdin, stdout and stderr piped."""

    @abstractmethod
    async def put_file(self, local: Path, remote: str) -> None:
        """Copy a file to `remote` (absolute, or relative to home) via a temp name + atomic rename."""

    @abstractmethod
    async def home(self) -> str:
        """The absolute home directory on the node."""

    @abstractmethod
    async def close(self) -> None: ...

    @property
    def is_connected(self) -> bool:
        return True

    def take_accepted_host_key(self) -> HostKeyInfo | None:
        """The host key the last connect trusted on first use, once (then None). Only SSH has keys."""
        return None


def clip_tail(text: str, limit: int = 600) -> str:
    """The last `limit` characters of text, marked when clipped."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


class LineSplitter:
    """Whole lines out of a byte stream's chunks, each at most `limit` bytes.

    Both transports read stdout in chunks through this, so a line means the same everywhere: an
    SSH read can end anywhere (asyncssh hands back a partial line at its receive window), and
    asyncio's own readline fails on a line past its buffer limit instead of saying what it saw.
    """

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines that `chunk` completes (without their newline). Raises ProtocolError."""
        self._partial += chunk
        if b"\n" not in chunk:
            self._check(self._partial)
            return []
        *lines, rest = bytes(self._partial).split(b"\n")
        self._partial = bytearray(rest)
        for line in (*lines, rest):
            self._check(line)
        return lines

    def end(self) -> bytes:
        """What is left at EOF: a last line without its newline (or b"")."""
        rest, self._partial = bytes(self._partial), bytearray()
        return rest

    def _check(self, line: bytes | bytearray) -> None:
        if len(line) > self.limit:
            head = bytes(line[:200]).decode("utf-8", "replace")
            raise ProtocolError(f"a line longer than the {self.limit}-byte line limit", head)


async def read_lines(
    read: Callable[[int], Awaitable[bytes]], limit: int = MAX_LINE_BYTES
) -> AsyncIterator[str]:
    """Decoded lines (no newline, no trailing CR) from `read(n)` until it returns b"" (EOF)."""
    splitter = LineSplitter(limit)
    while chunk := await read(READ_CHUNK_BYTES):
        for line in splitter.feed(chunk):
            yield line.decode("utf-8", "replace").rstrip("\r")
    if rest := splitter.end():
        yield rest.decode("utf-8", "replace").rstrip("\r")


class OutputTooLong(Exception):
    """A command printed more than its output limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


async def read_capped(read: Callable[[int], Awaitable[bytes]], limit: int = MAX_OUTPUT_BYTES) -> bytes:
    """Everything `read(n)` gives until EOF, at most `limit` bytes; more raises OutputTooLong."""
    data = bytearray()
    while chunk := await read(READ_CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            raise OutputTooLong(limit)
    return bytes(data)


async def read_tail(read: Callable[[int], Awaitable[bytes]], keep: int = STDERR_TAIL_CHARS) -> bytes:
    """The last `keep` bytes of what `read(n)` gives until EOF (all of it is read and dropped)."""
    tail = b""
    while chunk := await read(READ_CHUNK_BYTES):
        tail = (tail + chunk)[-keep:] if keep > 0 else b""
    return tail


def output_too_long(node: str, what: str, limit: int) -> NodeError:
    return NodeError(
        NodeErrorKind.PROTOCOL_ERROR,
        node,
        f"{what} printed more than {limit} bytes on stdout (the limit for a command's output); stopped it",
    )
