"""The local transport: commands run as asyncio subprocesses on this machine (argv, no shell)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from fleet_tui.fleet.transport.base import (
    STDERR_TAIL_CHARS,
    AgentProcess,
    CommandResult,
    NodeError,
    NodeErrorKind,
    OutputTooLong,
    Transport,
    output_too_long,
    read_capped,
    read_lines,
    read_tail,
)

if TYPE_CHECKING:
    from fleet_tui.config.inventory import Node

_PIPE = asyncio.subprocess.PIPE


class LocalAgentProcess(AgentProcess):
    """A local subprocess in its own process group (so a stop reaches its children too)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._stderr = ""
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        # Always drained: a full stderr pipe would block the agent.
        assert self._proc.stderr is not None
        while chunk := await self._proc.stderr.read(65536):
            self._stderr = (self._stderr + chunk.decode("utf-8", "replace"))[-STDERR_TAIL_CHARS:]

    async def lines(self) -> AsyncIterator[str]:
        assert self._proc.stdout is not None
        async for line in read_lines(self._proc.stdout.read):
            yield line

    async def write(self, text: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(text.encode())
        await self._proc.stdin.drain()

    async def close_stdin(self) -> None:
        assert self._proc.stdin is not None
        if not self._proc.stdin.is_closing():
            self._proc.stdin.close()
            with contextlib.suppress(OSError):
                await self._proc.stdin.wait_closed()

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc.returncode is not None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    async def wait(self, timeout: float | None = None) -> int:  # noqa: ASYNC109 - names fixed by the shared interface
        code = await asyncio.wait_for(self._proc.wait(), timeout)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        # What a stopped agent left unread (a flood, an endless line) is dropped: the subprocess
        # transport only closes itself once its pipes have ended.
        assert self._proc.stdout is not None
        with contextlib.suppress(asyncio.TimeoutError, RuntimeError):  # RuntimeError: a reader is waiting
            await asyncio.wait_for(read_tail(self._proc.stdout.read, 0), 1.0)
        return code

    def stderr_text(self) -> str:
        return self._stderr


class LocalTransport(Transport):
    """This machine. HOME is read at call time (tests point it at a temporary directory)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def connect(self) -> None:
        return None

    async def _spawn(self, argv: Sequence[str]) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=_PIPE,
                stdout=_PIPE,
                stderr=_PIPE,
                start_new_session=True,  # own process group; the terminal's ^C is ours to relay
            )
        except OSError as exc:
            raise NodeError(
                NodeErrorKind.CONFIG, self.node.name, f"cannot start {argv[0]!r}: {exc.strerror or exc}"
            ) from exc

    async def run(
        self,
        argv: Sequence[str],
        input: str | None = None,  # noqa: A002 - name fixed by the shared interface
        timeout: float | None = None,  # noqa: ASYNC109 - name fixed by the shared interface
    ) -> CommandResult:
        proc = await self._spawn(argv)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr

        async def feed() -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it need not read
                if input is not None:
                    stdin.write(input.encode())
                    await stdin.drain()
                stdin.close()

        # Read as it comes (communicate() would hold all of it): stdout up to the cap.
        reading = [
            asyncio.create_task(feed()),
            asyncio.create_task(read_capped(stdout.read)),
            asyncio.create_task(read_tail(stderr.read)),
        ]

        async def complete() -> tuple[bytes, bytes]:
            _, out, err = await asyncio.gather(*reading)
            await proc.wait()
            return cast(bytes, out), cast(bytes, err)

        try:
            out, err = await asyncio.wait_for(complete(), timeout)
        except TimeoutError:
            raise NodeError(
                NodeErrorKind.TIMEOUT, self.node.name, f"{argv[0]} did not finish within {timeout} s"
            ) from None
        except OutputTooLong as exc:
            raise output_too_long(self.node.name, f"`{argv[0]}`", exc.limit) from None
        finally:
            if proc.returncode is None:  # timed out, too long or cancelled: no orphan outlives the call
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            for task in reading:
                task.cancel()
            await asyncio.gather(*reading, return_exceptions=True)  # each stream has one reader
            # Read the pipes to their end (a few kB once the command is gone): the subprocess
            # transport only closes itself when both have ended and the process has exited.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(read_tail(stdout.read, 0), read_tail(stderr.read, 0), proc.wait()), 5.0
                )
        assert proc.returncode is not None
        return CommandResult(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    async def start(self, argv: Sequence[str]) -> AgentProcess:
        return LocalAgentProcess(await self._spawn(argv))

    async def put_file(self, local: Path, remote: str) -> None:
        target = Path(remote) if os.path.isabs(remote) else Path(await self.home()) / remote
        temp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")

        def copy() -> None:
            try:
                shutil.copyfile(local, temp)
                os.replace(temp, target)  # atomic: readers see the old file or the whole new one
            except BaseException:
                temp.unlink(missing_ok=True)
                raise

        try:
            await asyncio.to_thread(copy)
        except OSError as exc:
            raise NodeError(
                NodeErrorKind.AGENT_ERROR, self.node.name, f"cannot copy {local} to {target}: {exc}"
            ) from exc

    async def home(self) -> str:
        return os.path.expanduser("~")  # noqa: ASYNC240 - no I/O, reads $HOME

    async def close(self) -> None:
        return None
