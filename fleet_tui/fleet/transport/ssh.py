"""The SSH transport: asyncssh, one reused connection per node, strict host keys.

At most `handshake.MAX_HANDSHAKES` handshakes are in flight per event loop (see `handshake`).

Stopping a remote command: OpenSSH refuses SSH "signal" requests for root logins and before 7.9,
so every started command first reports its pid on stderr (``exec`` keeps the pid) and
`terminate`/`kill` also send ``kill -TERM/-KILL <pid>`` over a second channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shlex
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from fleet_tui.fleet.transport.base import (
    STDERR_TAIL_CHARS,
    AgentProcess,
    CommandResult,
    HostKeyInfo,
    NodeError,
    NodeErrorKind,
    SshSettings,
    Transport,
)
from fleet_tui.fleet.transport.handshake import describe_target, handshake_slot, map_connect_error
from fleet_tui.fleet.transport.hostkeys import (
    KnownHostsError,
    classify_host_key_failure,
    fetch_host_key,
    load_known_hosts,
    ssh_config_arg,
    trust_host_key,
)

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node

_PID_TAG = "fleet-tui-pid:"
_PID_WAIT_S = 10.0
"""How long a stop waits for the command's pid line (it is the first thing the command prints)."""
_PID_LINE = re.compile(rf"^{_PID_TAG}(\d+)$")


class SshAgentProcess(AgentProcess):
    """A command running over an SSH channel (no PTY: clean stdout, separate stderr)."""

    def __init__(self, proc: asyncssh.SSHClientProcess[str], transport: SshTransport) -> None:
        self._proc = proc
        self._transport = transport
        self._pid: int | None = None
        self._pid_seen = asyncio.Event()
        """Set once the pid line was read, or stderr ended without one."""
        self._stderr = ""
        self._stop_tasks: set[asyncio.Task[Any]] = set()
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        # Always drained: an unread stderr would stall the channel's flow control.
        try:
            async for line in self._proc.stderr:
                if not line:  # the trailing '' of SSHReader's iteration at EOF
                    break
                match = _PID_LINE.match(line.rstrip("\n")) if self._pid is None else None
                if match:
                    self._pid = int(match.group(1))
                    self._pid_seen.set()
                    continue
                self._stderr = (self._stderr + line)[-STDERR_TAIL_CHARS:]
        except (asyncssh.Error, OSError):
            pass
        finally:
            self._pid_seen.set()  # no pid is coming: release a pending stop

    async def lines(self) -> AsyncIterator[str]:
        try:
            async for line in self._proc.stdout:
                if not line:  # docs/PLATFORM.md, "SSH sessions": a final '' can be yielded at EOF
                    break
                yield line.rstrip("\r\n")
        except (asyncssh.Error, OSError) as exc:
            raise self._transport.lost(exc) from exc

    async def write(self, text: str) -> None:
        try:
            self._proc.stdin.write(text)
            await self._proc.stdin.drain()
        except (asyncssh.Error, OSError) as exc:
            raise self._transport.lost(exc) from exc

    async def close_stdin(self) -> None:
        with contextlib.suppress(asyncssh.Error, OSError):
            self._proc.stdin.write_eof()

    def _signal(self, name: str) -> None:
        if self._proc.returncode is not None:
            return
        with contextlib.suppress(asyncssh.Error, OSError):
            self._proc.send_signal(name)
        # The pid line may still be in flight (a stop right after start): the fallback waits
        # for it rather than being skipped.
        task = asyncio.create_task(self._kill_by_pid(name))
        self._stop_tasks.add(task)
        task.add_done_callback(self._stop_tasks.discard)

    async def _kill_by_pid(self, name: str) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._pid_seen.wait(), _PID_WAIT_S)
        if self._pid is not None and self._proc.returncode is None:
            await self._transport.kill_pid(self._pid, name)

    def terminate(self) -> None:
        self._signal("TERM")

    def kill(self) -> None:
        self._signal("KILL")

    async def wait(self, timeout: float | None = None) -> int:  # noqa: ASYNC109 - names fixed by the shared interface
        await asyncio.wait_for(self._proc.wait_closed(), timeout)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        code = self._proc.returncode
        return code if code is not None else -1

    def stderr_text(self) -> str:
        return self._stderr


class SshTransport(Transport):
    """One node over SSH; the connection is opened once and reused until `close`."""

    def __init__(self, node: Node, settings: SshSettings) -> None:
        self.node = node
        self.settings = settings
        self._conn: asyncssh.SSHClientConnection | None = None
        self._connect_lock = asyncio.Lock()
        self._home: str | None = None
        self.accepted_host_key: HostKeyInfo | None = None
        """Set when this connect trusted a new host key (accept_new_host_keys)."""

    @property
    def is_connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def take_accepted_host_key(self) -> HostKeyInfo | None:
        accepted, self.accepted_host_key = self.accepted_host_key, None
        return accepted

    async def _open(self) -> asyncssh.SSHClientConnection:
        node, settings = self.node, self.settings
        try:
            known_hosts = await asyncio.to_thread(load_known_hosts, settings.known_hosts_path())
        except KnownHostsError as exc:  # the operator's file: not the node's fault, not retried
            raise NodeError(NodeErrorKind.CONFIG, node.name, str(exc)) from None
        options: dict[str, Any] = {
            "known_hosts": known_hosts,
            "config": ssh_config_arg(settings),
            "connect_timeout": settings.connect_timeout,
            "keepalive_interval": settings.keepalive_interval,
            "keepalive_count_max": settings.keepalive_count_max,
        }
        if node.user:
            options["username"] = node.user
        if node.identity_file:
            identity = Path(os.path.expanduser(node.identity_file))  # noqa: ASYNC240 - no I/O
            if not await asyncio.to_thread(identity.is_file):
                raise NodeError(
                    NodeErrorKind.CONFIG,
                    node.name,
                    f"identity_file {node.identity_file} does not exist ({node.source})",
                )
            options["client_keys"] = [str(identity)]
        if not settings.use_ssh_agent:
            options["agent_path"] = None
        if node.proxy_jump:
            options["tunnel"] = node.proxy_jump
        async with handshake_slot():
            return await asyncssh.connect(node.host, node.port if node.port is not None else (), **options)

    async def connect(self) -> None:
        """Open the connection (once). Raises NodeError with the failure's kind."""
        async with self._connect_lock:
            if self.is_connected:
                return
            self._home = None
            try:
                try:
                    self._conn = await self._open()
                except asyncssh.HostKeyNotVerifiable:
                    error = await classify_host_key_failure(self.node, self.settings)
                    if (
                        error.kind is not NodeErrorKind.HOST_KEY_UNKNOWN
                        or not self.settings.accept_new_host_keys
                    ):
                        raise error from None
                    info = await fetch_host_key(self.node, self.settings)
                    await trust_host_key(info, self.settings.known_hosts_path())
                    self.accepted_host_key = info
                    # Reconnect through the normal strict check: a key that changed between
                    # the fetch and now is refused like any other.
                    try:
                        self._conn = await self._open()
                    except asyncssh.HostKeyNotVerifiable:
                        raise await classify_host_key_failure(self.node, self.settings) from None
                    except (OSError, asyncssh.Error, TimeoutError) as exc:
                        # The key is in known_hosts now: the operator must learn that even
                        # though this connect failed.
                        error = map_connect_error(self.node, self.settings, exc)
                        raise NodeError(
                            error.kind,
                            error.node,
                            f"{error.message} (after trusting its new host key {info.fingerprint})",
                            fingerprint=info.fingerprint,
                        ) from exc
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                raise map_connect_error(self.node, self.settings, exc) from exc

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if not self.is_connected:
            await self.connect()
        assert self._conn is not None
        return self._conn

    def lost(self, exc: BaseException) -> NodeError:
        """An error on an open connection: the node went away (or the channel broke)."""
        if isinstance(exc, NodeError):
            return exc
        reason = exc.reason if isinstance(exc, asyncssh.Error) else (str(exc) or type(exc).__name__)
        return NodeError(
            NodeErrorKind.UNREACHABLE,
            self.node.name,
            f"connection to {describe_target(self.node)} lost: {reason}",
        )

    async def _run_command(self, command: str, input: str | None, timeout: float | None) -> CommandResult:  # noqa: A002, ASYNC109 - names fixed by the shared interface
        conn = await self._connection()
        try:
            process = await conn.create_process(command, input=input, errors="replace")
            try:
                result = await process.wait(check=False, timeout=timeout)
            finally:
                process.close()  # conn.run would leave the channel open after a timeout or cancel
        except asyncssh.TimeoutError:
            raise NodeError(
                NodeErrorKind.TIMEOUT,
                self.node.name,
                f"command did not finish within {timeout} s: {command[:80]}",
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise self.lost(exc) from exc
        code = result.returncode if result.returncode is not None else -1
        return CommandResult(code, str(result.stdout or ""), str(result.stderr or ""))

    async def run(
        self,
        argv: Sequence[str],
        input: str | None = None,  # noqa: A002 - name fixed by the shared interface
        timeout: float | None = None,  # noqa: ASYNC109 - name fixed by the shared interface
    ) -> CommandResult:
        return await self._run_command(shlex.join(argv), input, timeout)

    async def start(self, argv: Sequence[str]) -> AgentProcess:
        conn = await self._connection()
        # `exec` keeps the shell's pid, so the pid printed first is the command's own.
        command = f'echo "{_PID_TAG}$$" >&2; exec {shlex.join(argv)}'
        try:
            proc = await conn.create_process(command, encoding="utf-8", errors="replace")
        except (asyncssh.Error, OSError) as exc:
            raise self.lost(exc) from exc
        return SshAgentProcess(proc, self)

    async def kill_pid(self, pid: int, signal_name: str) -> None:
        """Signal a process on the node over a second channel (works where SSH signals do not).

        Only over the open connection: reconnecting just to signal would open a connection that
        nobody closes (and a lost connection already stopped the command's input).
        """
        if not self.is_connected:
            return
        with contextlib.suppress(NodeError):
            await self._run_command(shlex.join(["kill", f"-{signal_name}", str(pid)]), None, 10.0)

    async def home(self) -> str:
        if self._home is None:
            result = await self._run_command('printf %s "$HOME"', None, 30.0)
            if result.exit_status != 0 or not result.stdout.startswith("/"):
                raise NodeError(
                    NodeErrorKind.AGENT_ERROR,
                    self.node.name,
                    f"cannot find the home directory: {result.stdout!r} {result.stderr.strip()!r}",
                )
            self._home = result.stdout
        return self._home

    async def put_file(self, local: Path, remote: str) -> None:
        target = remote if remote.startswith("/") else f"{await self.home()}/{remote}"
        temp = f"{target}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        conn = await self._connection()
        try:
            client = await conn.start_sftp_client()
        except asyncssh.ChannelOpenError as exc:
            if conn.is_closed():
                raise self.lost(exc) from exc
            # The connection is fine, the server refused the subsystem: sshd has no SFTP. Not a
            # fault that waiting cures, so it is the node's configuration (never retried).
            raise NodeError(
                NodeErrorKind.CONFIG,
                self.node.name,
                f"{describe_target(self.node)} has no SFTP subsystem ({exc.reason}); uploads need "
                "one (sshd_config: Subsystem sftp internal-sftp)",
            ) from exc
        except (asyncssh.Error, OSError) as exc:
            raise self.lost(exc) from exc
        try:
            async with client as sftp:
                try:
                    await sftp.put(str(local), temp)
                    await sftp.posix_rename(temp, target)  # atomic replace (OpenSSH extension)
                except BaseException:
                    with contextlib.suppress(asyncssh.Error, OSError):
                        await sftp.remove(temp)
                    raise
        except asyncssh.SFTPError as exc:
            raise NodeError(
                NodeErrorKind.AGENT_ERROR,
                self.node.name,
                f"upload of {local.name} to {target} failed: {exc.reason}",
            ) from exc
        except (asyncssh.Error, OSError) as exc:
            raise self.lost(exc) from exc

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(asyncssh.Error, OSError):
                await conn.wait_closed()
