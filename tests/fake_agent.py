"""A deliberately misbehaving node agent (fake): run as `<python> fake_agent.py MODE AGENT.pyz`.

`fake_python` writes the node's `python`: a shell script that runs this fake for the agent
(which misbehaves in its `run` command and hands every other command to the real agent) and the
real interpreter for everything else (so deploy works), except in mode `check_flood`, where every
`python -c` check prints 400 MB, and `probe_flood`, whose `probe` and `selftest` send 5,000 events. The mode
is read from a file beside the script at each call, so a test can heal the node (`heal`) before
resuming the run.

Modes: after a valid `hello` (naming the deployed agent) and `cell_started` for the job's first
cell, the fake sends one kind of bad input, then sleeps until the controller stops it:
deep_json, huge_ints, wrong_types, long_line (16 MiB + 10 bytes without a newline), hung
(stops itself with SIGSTOP), flood (valid sample batches past the spec's max_samples).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

MODES = ("deep_json", "huge_ints", "wrong_types", "long_line", "hung", "flood", "check_flood", "probe_flood")
LINE_LIMIT = 16 * 1024 * 1024
CHECK_FLOOD_MB = 400


def fake_python(directory: Path, mode: str, *, home: Path | None = None) -> Path:
    """The node's `python` for `mode` (see the module doc). `home`: the node's own HOME (local
    nodes share this machine, and each agent takes its lock in its HOME)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mode").write_text(mode)
    script = directory / "python"
    flood = f"import sys; [sys.stdout.write('z' * 1048576) for _ in range({CHECK_FLOOD_MB})]"
    script.write_text(
        "#!/bin/sh\n"
        + (f"export HOME={home}\n" if home is not None else "")
        + f'mode=$(cat "{directory / "mode"}")\n'
        + f'if [ "$mode" = check_flood ] && [ "$1" = -c ]; then exec {sys.executable} -c "{flood}"; fi\n'
        + 'if [ "$mode" != healthy ] && [ "$1" = -u ]; then\n'
        + f'  exec {sys.executable} {__file__} "$mode" "$2" "$3"\nfi\n'
        + f'exec {sys.executable} "$@"\n'
    )
    script.chmod(0o755)
    return script


def heal(script: Path) -> None:
    """From now on the node runs the real agent."""
    (script.parent / "mode").write_text("healthy")


def _emit(line: str | dict[str, object]) -> None:
    sys.stdout.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    sys.stdout.flush()


def main(mode: str, agent_path: str, command: str) -> None:
    if command not in (("probe", "selftest") if mode == "probe_flood" else ("run",)):
        os.execv(sys.executable, [sys.executable, "-u", agent_path, command])  # the real agent
    sha = Path(agent_path).name.removeprefix("agent-").removesuffix(".pyz")
    if mode == "probe_flood":
        _emit({"schema": 1, "type": "hello", "agent_sha": sha})
        for _ in range(5000):
            _emit({"schema": 1, "type": "progress"})
        _emit({"schema": 1, "type": "done", "ok": True, "exit_code": 0})
        return
    job = json.loads(sys.stdin.readline())
    cell = job["cells"][0]["cell_id"]
    _emit({"schema": 1, "type": "hello", "agent_sha": sha})
    _emit({"schema": 1, "type": "cell_started", "cell_id": cell})
    if mode == "deep_json":
        _emit('{"schema": 1, "type": "facts", "facts": ' + "[" * 1000 + "]" * 1000 + "}")
    elif mode == "huge_ints":
        _emit(f'{{"schema": 1, "type": "thermal", "cell_id": "{cell}", "t_ns": {2**64}, "state": {{}}}}')
    elif mode == "wrong_types":
        _emit(f'{{"schema": 1, "type": ["samples"], "cell_id": "{cell}"}}')
    elif mode == "long_line":
        sys.stdout.write("x" * (LINE_LIMIT + 10))
        sys.stdout.flush()
    elif mode == "hung":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif mode == "flood":
        batch = {"schema": 1, "type": "samples", "cell_id": cell, "run": 0, "phase": "measure"}
        for _ in range(1000):
            _emit({**batch, "ns": [100_000] * 1000})
    time.sleep(120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
