"""agent_events against real local processes that behave, lie, die or hang."""

from __future__ import annotations

import contextlib
import os
import sys
import textwrap
from pathlib import Path

import pytest

from fleet_tui.config.inventory import Node
from fleet_tui.fleet.agent import agent_events
from fleet_tui.fleet.transport.base import (
    MAX_OUTPUT_BYTES,
    STDERR_TAIL_CHARS,
    LineSplitter,
    NodeError,
    NodeErrorKind,
)
from fleet_tui.fleet.transport.local import LocalTransport
from node_agent.protocol import MAX_LINE_BYTES, ProtocolError

PRELUDE = """\
import json, os, select, sys, time
def emit(kind, **fields):
    print(json.dumps({"schema": 1, "type": kind, **fields}), flush=True)
"""


def _agent(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake_agent.py"
    path.write_text(PRELUDE + textwrap.dedent(body))
    return str(path)


@pytest.fixture
def transport(local_node: Node) -> LocalTransport:
    return LocalTransport(local_node)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"
    return False


async def test_job_goes_in_and_stdin_stays_open_until_done(tmp_path: Path, transport: LocalTransport) -> None:
    saw_eof = tmp_path / "saw-eof"
    agent = _agent(
        tmp_path,
        f"""
        job = json.loads(sys.stdin.readline())
        readable, _, _ = select.select([sys.stdin], [], [], 0.3)
        emit("hello", command=sys.argv[1], pid=os.getpid(), job=job, stdin_eof_before_done=bool(readable))
        emit("done", ok=True, exit_code=0)
        sys.stdin.read()  # exits only when the controller closes stdin after `done`
        open({str(saw_eof)!r}, "w").close()
        """,
    )
    events = [e async for e in agent_events(transport, agent, "run", {"cell": "x", "n": 3})]
    assert [e["type"] for e in events] == ["hello", "done"]
    assert events[0]["command"] == "run"
    assert events[0]["job"] == {"cell": "x", "n": 3}
    assert events[0]["stdin_eof_before_done"] is False
    # stdin was closed after done, so the agent read EOF and exited by itself (not killed)
    assert saw_eof.exists()
    pid = events[0]["pid"]
    assert isinstance(pid, int) and not _alive(pid)


async def test_garbage_line_is_a_protocol_error_and_the_agent_is_stopped(
    tmp_path: Path, transport: LocalTransport
) -> None:
    agent = _agent(
        tmp_path,
        """
        emit("hello", pid=os.getpid())
        print("Traceback (most recent call last): this is not JSON", flush=True)
        time.sleep(60)
        """,
    )
    seen: list[dict[str, object]] = []
    with pytest.raises(NodeError) as info:
        async for event in agent_events(transport, agent, "probe"):
            seen.append(event)
    assert info.value.kind is NodeErrorKind.PROTOCOL_ERROR
    assert info.value.node == "local"
    assert "this is not JSON" in str(info.value) and str(info.value).startswith("local: ")
    pid = seen[0]["pid"]
    assert isinstance(pid, int) and not _alive(pid)


async def test_exit_without_done_is_an_agent_error_with_stderr(
    tmp_path: Path, transport: LocalTransport
) -> None:
    agent = _agent(
        tmp_path,
        """
        emit("hello")
        print("disk on fire", file=sys.stderr, flush=True)
        sys.exit(7)
        """,
    )
    with pytest.raises(NodeError) as info:
        async for _ in agent_events(transport, agent, "probe"):
            pass
    assert info.value.kind is NodeErrorKind.AGENT_ERROR
    assert "status 7" in info.value.message and "disk on fire" in info.value.message


async def test_breaking_out_early_stops_the_agent(tmp_path: Path, transport: LocalTransport) -> None:
    agent = _agent(
        tmp_path,
        """
        emit("hello", pid=os.getpid())
        while True:
            emit("progress", cell_id="c", phase="measure", done=1, total=2)
            time.sleep(0.05)
        """,
    )
    async with contextlib.aclosing(agent_events(transport, agent, "run")) as stream:
        async for event in stream:
            pid = event["pid"]
            break
    assert isinstance(pid, int) and not _alive(pid)


async def test_blank_lines_are_ignored_and_long_lines_pass(tmp_path: Path, transport: LocalTransport) -> None:
    agent = _agent(
        tmp_path,
        """
        print("", flush=True)
        emit("samples", cell_id="c", run=0, phase="measure", ns=list(range(200000)), t_ns=[])
        emit("done", ok=True, exit_code=0)
        """,
    )
    events = [e async for e in agent_events(transport, agent, "run")]
    assert [e["type"] for e in events] == ["samples", "done"]
    ns = events[0]["ns"]
    assert isinstance(ns, list) and len(ns) == 200000


async def test_missing_python_is_a_config_error(tmp_path: Path, local_node: Node) -> None:
    node = Node(name="local", host="localhost", transport="local", python=str(tmp_path / "no-python"))
    with pytest.raises(NodeError) as info:
        async for _ in agent_events(LocalTransport(node), "agent.pyz", "probe"):
            pass
    assert info.value.kind is NodeErrorKind.CONFIG
    assert "no-python" in info.value.message


async def test_hello_naming_another_agent_is_refused(tmp_path: Path, transport: LocalTransport) -> None:
    """A node that runs something else than the deployed, content-named agent is lying."""
    agent = tmp_path / "agent-0123456789abcdef.pyz"  # python runs a non-zip file as a script
    agent.write_text(
        PRELUDE + 'emit("hello", agent_sha="feedface" * 8)\nemit("done", ok=True, exit_code=0)\n'
    )
    with pytest.raises(NodeError) as caught:
        _ = [e async for e in agent_events(transport, str(agent), "probe")]
    assert caught.value.kind is NodeErrorKind.PROTOCOL_ERROR
    assert "feedface" in caught.value.message and "agent-0123456789abcdef.pyz" in caught.value.message

    honest = tmp_path / "agent-feedfacefeedface.pyz"
    honest.write_text(agent.read_text())
    events = [e async for e in agent_events(transport, str(honest), "probe")]
    assert [e["type"] for e in events] == ["hello", "done"]


async def test_a_line_past_the_limit_is_a_protocol_error(tmp_path: Path, transport: LocalTransport) -> None:
    # No newline within 16 MiB: asyncio's readline would fail with "Separator is not found".
    agent = _agent(
        tmp_path,
        f"""
        sys.stdout.write("x" * ({MAX_LINE_BYTES} + 10))
        sys.stdout.flush()
        time.sleep(60)
        """,
    )
    with pytest.raises(NodeError) as info:
        async for _ in agent_events(transport, agent, "run"):
            pass
    assert info.value.kind is NodeErrorKind.PROTOCOL_ERROR
    assert f"longer than the {MAX_LINE_BYTES}-byte line limit" in info.value.message


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_line_splitter_gives_whole_lines_whatever_the_chunks(chunk: int) -> None:
    data = b"first\nsecond line\r\n\n" + b"y" * 300 + b"\nlast"
    splitter = LineSplitter(limit=400)
    lines = [
        line for start in range(0, len(data), chunk) for line in splitter.feed(data[start : start + chunk])
    ]
    assert [*lines, splitter.end()] == [b"first", b"second line\r", b"", b"y" * 300, b"last"]


def test_line_splitter_refuses_a_line_past_its_limit_before_its_newline() -> None:
    splitter = LineSplitter(limit=10)
    splitter.feed(b"ok\n12345")
    with pytest.raises(ProtocolError, match="10-byte line limit"):
        splitter.feed(b"678901")


async def test_run_output_past_the_cap_stops_the_command_and_names_the_limit(
    transport: LocalTransport,
) -> None:
    flood = "import sys\nwhile True: sys.stdout.write('z' * 65536)"
    with pytest.raises(NodeError) as info:
        await transport.run([sys.executable, "-c", flood], timeout=60)
    assert info.value.kind is NodeErrorKind.PROTOCOL_ERROR
    assert info.value.node == "local"
    assert f"more than {MAX_OUTPUT_BYTES} bytes on stdout" in info.value.message


async def test_run_keeps_output_under_the_cap_and_the_tail_of_stderr(transport: LocalTransport) -> None:
    script = "import sys; sys.stdout.write(sys.stdin.read() * 2); sys.stderr.write('e' * 100000 + 'END')"
    result = await transport.run([sys.executable, "-c", script], input="hi", timeout=60)
    assert (result.exit_status, result.stdout) == (0, "hihi")
    assert result.stderr.endswith("END") and len(result.stderr) == STDERR_TAIL_CHARS


@pytest.mark.parametrize(
    "body",
    [
        "os.kill(os.getpid(), signal.SIGSTOP)",  # stopped: SIGTERM waits for a SIGCONT
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(1)",
    ],
    ids=["sigstop", "ignores-sigterm"],
)
async def test_a_silent_agent_is_hung_and_killed(
    tmp_path: Path, transport: LocalTransport, body: str
) -> None:
    agent = _agent(tmp_path, 'import signal\nemit("hello", pid=os.getpid())\n' + body)
    pid = None
    with pytest.raises(NodeError) as info:
        async for event in agent_events(transport, agent, "run", idle_s=1.0):
            pid = event["pid"]
    assert info.value.kind is NodeErrorKind.HUNG
    assert "sent nothing for 1 s" in info.value.message
    assert isinstance(pid, int) and not _alive(pid)


async def test_an_agent_that_keeps_talking_is_stopped_at_the_deadline(
    tmp_path: Path, transport: LocalTransport
) -> None:
    agent = _agent(tmp_path, 'while True:\n    emit("progress")\n    time.sleep(0.1)')
    with pytest.raises(NodeError) as info:
        async for _ in agent_events(transport, agent, "run", idle_s=5.0, deadline_s=1.0):
            pass
    assert info.value.kind is NodeErrorKind.HUNG
    assert "ran past the job's deadline of 1 s" in info.value.message
