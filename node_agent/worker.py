"""The worker process: one run of one cell in a fresh interpreter, spawned by the job runner.

`WORKER_BOOT` is the worker's ``-c`` program (the code root, zipapp or source tree, is argv[1]);
`worker_main` reads the sub-job and calls the measurement body (`runner._worker_run`). Its
stdin is a pipe from the agent: when the agent dies, the worker stops too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from typing import IO

from node_agent.lifecycle import Stopper, start_stdin_watchdog
from node_agent.protocol import AgentExit, Emitter

WORKER_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from node_agent.worker import worker_main; sys.exit(worker_main())"
)


def drain_stderr(proc: subprocess.Popen[bytes], tail: deque[str]) -> None:
    """Forward a worker's stderr to the agent's (logs) and keep its tail for failure reasons."""
    assert proc.stderr is not None
    for raw in proc.stderr:
        text = raw.decode("utf-8", "replace")
        tail.append(text)
        try:
            sys.stderr.write(text)
        except (OSError, ValueError):
            pass
    close_quietly(proc.stderr)


def close_quietly(stream: IO[bytes] | None) -> None:
    if stream is not None:
        try:
            stream.close()
        except OSError:
            pass


def code_root() -> str:
    """The sys.path entry holding node_agent: the zipapp, or the source tree's root."""
    import node_agent

    return os.path.dirname(os.path.dirname(os.path.abspath(node_agent.__file__)))


def worker_main() -> int:
    """One run of one cell in this fresh process (spawned by JobRunner; job line on stdin)."""
    # Libraries sometimes print to stdout; the protocol stream keeps its own fd, fd 1 goes to stderr.
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
    out = Emitter(open(protocol_fd, "w", encoding="utf-8", closefd=True))  # noqa: SIM115
    stopper = Stopper()
    stopper.install_signal_handlers()
    line = sys.stdin.readline()
    try:
        subjob = json.loads(line)
    except json.JSONDecodeError:
        out.error("bad_job", "worker: no sub-job on stdin")
        return AgentExit.BAD_INPUT
    start_stdin_watchdog(sys.stdin, stopper)
    cell = subjob["cell"]
    try:
        from node_agent.runner import _worker_run  # the measurement body stays with the runner

        result = _worker_run(subjob, out, stopper)
    except Exception as exc:
        import traceback

        traceback.print_exc(file=sys.stderr)
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "summary": {}}
    if stopper.is_set() and result.get("status") == "ok":
        return AgentExit.FAILED
    out.emit("cell_result", cell_id=cell["cell_id"], **result)
    return AgentExit.OK
