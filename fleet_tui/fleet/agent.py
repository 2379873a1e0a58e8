"""The controller's side of one agent session: start it, feed the job, decode its events.

stdin stays open while the agent runs: it is the agent's liveness channel (a controller that
goes away closes it, and the agent stops). It is closed after `done`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import posixpath
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from fleet_tui.fleet.transport.base import AgentProcess, NodeError, NodeErrorKind, Transport, clip_tail
from node_agent.protocol import ProtocolError, decode_event

_DEPLOYED_NAME = re.compile(r"agent-([0-9a-f]{16})\.pyz$")

EXIT_WAIT_S = 5.0
"""How long an agent gets to exit after `done` or SIGTERM before it is killed."""


async def stop_agent(proc: AgentProcess, *, at_once: bool = False) -> None:
    """terminate, wait, then kill: the agent gets EXIT_WAIT_S to clean up. `at_once`: kill
    without asking (a hung agent does not answer SIGTERM; a stopped one cannot)."""
    if at_once:
        proc.kill()
    else:
        proc.terminate()
    await proc.close_stdin()
    try:
        await proc.wait(EXIT_WAIT_S)
        return
    except TimeoutError:
        pass
    proc.kill()
    with contextlib.suppress(TimeoutError):
        await proc.wait(EXIT_WAIT_S)


def check_hello(event: Mapping[str, Any], agent_remote_path: str, node: str) -> None:
    """A node whose `hello` names another agent than the one deployed is lying (or runs a stale
    copy): its results could not be traced to the agent's sha256, so it is refused."""
    deployed = _DEPLOYED_NAME.search(agent_remote_path)
    if deployed is None:  # not a content-named agent (tests, a source checkout)
        return
    claimed = event.get("agent_sha")
    if not isinstance(claimed, str) or not claimed.startswith(deployed.group(1)):
        raise NodeError(
            NodeErrorKind.PROTOCOL_ERROR,
            node,
            f"agent says it is {claimed!r}, but {posixpath.basename(agent_remote_path)} was deployed "
            "and run; refusing its results",
        )


def bad_line(node: str, command: str, exc: ProtocolError) -> NodeError:
    return NodeError(
        NodeErrorKind.PROTOCOL_ERROR, node, f"agent `{command}` sent a bad line, stopped it: {exc}"
    )


def decode_line(line: str, node: str, command: str = "run") -> dict[str, Any]:
    """One line from `node`'s agent as an event; a line that is not one is the node's
    NodeError(PROTOCOL_ERROR) (`decode_event` raises nothing else, whatever the line)."""
    try:
        return decode_event(line)
    except ProtocolError as exc:
        raise bad_line(node, command, exc) from None


def agent_argv(python: str, agent_remote_path: str, command: str, args: Sequence[str] = ()) -> list[str]:
    return [python, "-u", agent_remote_path, command, *args]


async def agent_events(
    transport: Transport,
    agent_remote_path: str,
    command: str,
    job: Mapping[str, Any] | None = None,
    *,
    args: Sequence[str] = (),
    idle_s: float | None = None,
    deadline_s: float | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """Run `<python> -u <pyz> <command>` on the node and yield its events up to and with `done`.

    Raises NodeError(PROTOCOL_ERROR) on a line that is not an event, or a `hello` that names
    another agent than the one deployed (the agent is stopped first),
    and NodeError(AGENT_ERROR) when the agent exits without `done` (exit status and stderr tail).
    If the caller stops iterating or is cancelled, the agent is terminated, then killed.
    Use `contextlib.aclosing` when breaking out early, so that happens at once.

    Liveness: `idle_s` bounds the silence between two lines, `deadline_s` the whole session
    (from start). Past either, the agent is killed and NodeError(HUNG) raised: a stopped
    process, or one that sleeps and ignores SIGTERM, is caught while its SSH session still
    answers keepalives.
    """
    node = transport.node.name
    proc = await transport.start(agent_argv(transport.node.python, agent_remote_path, command, args))
    finished = False
    hung = False
    loop = asyncio.get_running_loop()
    ends = None if deadline_s is None else loop.time() + deadline_s
    try:
        if job is not None:
            await proc.write(json.dumps(job, separators=(",", ":")) + "\n")
        lines = proc.lines()
        while True:
            wait = idle_s
            if ends is not None:
                wait = (
                    max(0.0, ends - loop.time()) if wait is None else min(wait, max(0.0, ends - loop.time()))
                )
            try:
                line = await asyncio.wait_for(anext(lines), wait)
            except StopAsyncIteration:
                break
            except TimeoutError:
                hung = True
                past_deadline = ends is not None and loop.time() >= ends
                raise NodeError(
                    NodeErrorKind.HUNG,
                    node,
                    f"agent `{command}` "
                    + (
                        f"ran past the job's deadline of {deadline_s:g} s"
                        if past_deadline
                        else f"sent nothing for {idle_s:g} s (the longest silence the job allows)"
                    )
                    + "; killed it",
                ) from None
            except ProtocolError as exc:  # a line past the line limit
                raise bad_line(node, command, exc) from None
            if not line.strip():
                continue
            event = decode_line(line, node, command)
            if event["type"] == "hello":
                check_hello(event, agent_remote_path, node)
            if event["type"] == "done":
                await proc.close_stdin()
                with contextlib.suppress(TimeoutError):
                    await proc.wait(EXIT_WAIT_S)
                    finished = True
                yield event
                return
            yield event
        try:
            status: int | None = await proc.wait(EXIT_WAIT_S)
            finished = True
        except TimeoutError:
            status = None
        stderr = clip_tail(proc.stderr_text())
        raise NodeError(
            NodeErrorKind.AGENT_ERROR,
            node,
            f"agent `{command}` "
            + (f"exited with status {status}" if status is not None else "closed its output")
            + " before `done`"
            + (f"; stderr: {stderr}" if stderr else "; no stderr"),
        )
    finally:
        if not finished:
            await stop_agent(proc, at_once=hung)
